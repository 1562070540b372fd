import AWSCredentials
import AWSSigV4
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import TestSupport
import Testing

@testable import LambdaInvoke

/// moto's server validates every signature with its own SigV4 code (botocore's rules): a mistake
/// shared by our signer and our tests cannot pass here.
@Suite("Invoke against moto with IAM authentication on", .serialized)
struct MotoSignatureTests {
    func withMoto(_ body: (MotoServer) async throws -> Void) async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        try await body(moto)
    }

    func client(_ moto: MotoServer, _ credentials: Credentials) throws -> LambdaInvokeClient {
        try LambdaInvokeClient(
            configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(customEndpoint: moto.endpoint)),
            credentials: StaticCredentialSource(credentials),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "moto")
        )
    }

    func request(_ moto: MotoServer) throws -> InvokeRequest {
        // moto checks signatures only for a plain function name in the path (its quirk), and needs a body.
        var request = InvokeRequest(function: try FunctionARN(parsing: moto.fixture.function_arn), payload: ByteBuffer(string: #"{"order":42}"#))
        request.functionIdentifier = moto.fixture.function_name
        return request
    }

    @Test func signaturesAreValidatedByAnIndependentImplementation() async throws {
        try await withMoto { moto in
            let keys = moto.fixture.user
            let good = try client(moto, Credentials(accessKeyID: keys.access_key_id, secretAccessKey: keys.secret_access_key))
            defer { Task { try? await good.shutdown() } }
            let result = try await good.invoke(try request(moto))
            #expect(result.statusCode == 200)
            #expect(String(buffer: result.payload) == #"{"order":42}"#)

            // The same client, pooled connection and all, again: the signing-key cache must not go stale.
            let again = try await good.invoke(try request(moto))
            #expect(again.statusCode == 200)

            // With the caller's trace as X-Amzn-Trace-Id, unsigned as the AWS SDKs send it: accepted.
            var traced = try request(moto)
            traced.traceHeader = "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
            #expect(try await good.invoke(traced).statusCode == 200)
            // It is on the request moto accepted, and outside what was signed.
            let signedHeaders = HTTPHeaders(
                good.signedRequest(
                    traced, to: try good.configuration.endpoints.endpoint(for: traced.function),
                    identity: Credentials(accessKeyID: keys.access_key_id, secretAccessKey: keys.secret_access_key)
                ).fields.map { ("\($0.0)", $0.1) })
            #expect(signedHeaders["X-Amzn-Trace-Id"] == [traced.traceHeader!])
            #expect(signedHeaders.first(name: "authorization")?.contains("x-amzn-trace-id") == false)

            let wrong = try client(moto, Credentials(accessKeyID: keys.access_key_id, secretAccessKey: "not-the-secret"))
            defer { Task { try? await wrong.shutdown() } }
            let signed = try request(moto)
            do throws(LambdaInvokeError) {
                _ = try await wrong.invoke(signed)
                Issue.record("a request signed with the wrong secret was accepted")
            } catch {
                #expect(error.code == .aws(status: 403, errorCode: "SignatureDoesNotMatch"), "\(error)")
                #expect(error.isAuthenticationFailure)
            }
        }
    }

    @Test func temporaryCredentialsWithSessionTokenAreAccepted() async throws {
        try await withMoto { moto in
            let keys = moto.fixture.temporary
            let temporary = try client(moto, Credentials(accessKeyID: keys.access_key_id, secretAccessKey: keys.secret_access_key, sessionToken: keys.session_token))
            defer { Task { try? await temporary.shutdown() } }
            let result = try await temporary.invoke(try request(moto))
            #expect(result.statusCode == 200)
        }
    }
}

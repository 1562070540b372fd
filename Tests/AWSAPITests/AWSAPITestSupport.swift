import AWSAPI
import AWSCredentials
import AWSSigV4
import Foundation
import Logging
import NIOPosix
import Synchronization
import TestSupport

/// Fixed credentials that count how often AWS refused them.
final class CountingCredentialSource: CredentialSource {
    let fixed: Credentials
    private let refusals = Mutex(0)

    init(_ credentials: Credentials) {
        fixed = credentials
    }

    convenience init(_ keys: MotoServer.Fixture.Keys) {
        self.init(Credentials(accessKeyID: keys.access_key_id, secretAccessKey: keys.secret_access_key, sessionToken: keys.session_token))
    }

    var authenticationFailures: Int { refusals.withLock { $0 } }

    func credentials(timeout: Duration) async throws(CredentialsError) -> Credentials { fixed }
    func authenticationFailed() { refusals.withLock { $0 += 1 } }
}

/// Example keys for servers that do not check signatures.
let exampleCredentials = CountingCredentialSource(Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))

/// A client whose Lambda and SSM endpoints are `endpoint`, with short backoff so that retry tests
/// stay fast; `configure` adjusts the rest.
func makeClient(
    endpoint: String,
    credentials: any CredentialSource = exampleCredentials,
    configure: (inout AWSServiceConfiguration) -> Void = { _ in }
) throws -> AWSAPIClient {
    var configuration = try AWSServiceConfiguration(environment: ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint])
    configuration.maximumBackoff = .milliseconds(20)
    configuration.callTimeout = .seconds(10)
    configure(&configuration)
    return try AWSAPIClient(configuration: configuration, credentials: credentials, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "aws-api-test"))
}

/// Runs `body` with a client, then shuts the client down.
func withClient<T>(_ client: AWSAPIClient, _ body: (AWSAPIClient) async throws -> T) async throws -> T {
    try await withTeardown({ try await body(client) }, teardown: { await client.shutdown() })
}

/// Runs `body` against a fresh moto server (IAM authentication on), stopped afterwards.
func withMoto(_ body: (MotoServer) async throws -> Void) async throws {
    let moto = try await MotoServer()
    defer { moto.stop() }
    try await body(moto)
}

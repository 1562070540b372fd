import AWSCredentials
import AWSSigV4
import Foundation
import LambdaInvoke
import LambdaPayload
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

let testCredentials = Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
let ordersARN = try! FunctionARN(parsing: "arn:aws:lambda:us-east-1:123456789012:function:orders:live")

/// An HTTPS Lambda stand-in with a certificate from a test CA, and a client that trusts that CA.
struct InvokeFixture {
    let server: TestHTTPServer
    let client: LambdaInvokeClient
    let directory: TemporaryDirectory

    static func start(
        configuration: (inout LambdaInvokeConfiguration) -> Void = { _ in },
        credentials: any CredentialSource = StaticCredentialSource(testCredentials),
        trustServer: Bool = true,
        handler: @escaping TestHTTPServer.Handler
    ) async throws -> InvokeFixture {
        let ca = try TestCA()
        let server = try await TestHTTPServer(tls: try ca.issueLeaf().serverTLSConfiguration(), handler: handler)
        let directory = try TemporaryDirectory()
        let caFile = try (trustServer ? ca : TestCA(commonName: "some other CA")).writePEM(to: directory.url)
        var config = LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(customEndpoint: server.baseURL), caFile: caFile, maximumConnectionsPerHost: 4)
        configuration(&config)
        let client = try LambdaInvokeClient(
            configuration: config,
            credentials: credentials,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        return InvokeFixture(server: server, client: client, directory: directory)
    }

    func stop() async {
        try? await client.shutdown()
        await server.shutdown()
        directory.remove()
    }

    // The default deadline only bounds a failure: 347 tests start at once on two cores.
    func invoke(_ payload: String = #"{"hello":"world"}"#, type: InvocationType = .requestResponse, timeout: Duration = .seconds(60), mayRetry: Bool = false) async throws(LambdaInvokeError)
        -> LambdaInvocationResult
    {
        try await client.invoke(InvokeRequest(function: ordersARN, payload: ByteBuffer(string: payload), invocationType: type, timeout: timeout, mayRetryThrottling: mayRetry))
    }

    /// Runs `body` and always stops the fixture.
    static func with(
        configuration: (inout LambdaInvokeConfiguration) -> Void = { _ in },
        credentials: any CredentialSource = StaticCredentialSource(testCredentials),
        trustServer: Bool = true,
        handler: @escaping TestHTTPServer.Handler,
        _ body: (InvokeFixture) async throws -> Void
    ) async throws {
        let fixture = try await start(configuration: configuration, credentials: credentials, trustServer: trustServer, handler: handler)
        try await withTeardown {
            try await body(fixture)
        } teardown: {
            await fixture.stop()
        }
    }
}

func expectInvokeError(_ expected: LambdaInvokeError.Code, _ body: () async throws(LambdaInvokeError) -> LambdaInvocationResult) async -> LambdaInvokeError? {
    do {
        let result = try await body()
        Issue.record("expected \(expected), got a result with status \(result.statusCode)")
        return nil
    } catch {
        #expect(error.code == expected, "\(error)")
        return error
    }
}

@Suite("Invoke client against a local HTTPS endpoint")
struct InvokeClientTests {
    @Test func upstreamRequestIsBuiltFromScratchAndSigned() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(headers: [("x-amzn-RequestId", "r-1"), ("X-Amz-Executed-Version", "3")], json: #"{"ok":true}"#) }) { fixture in
            let result = try await fixture.invoke()
            #expect(result.statusCode == 200)
            #expect(result.requestID == "r-1")
            #expect(result.functionError == nil)
            #expect(String(buffer: result.payload) == #"{"ok":true}"#)

            let request = try #require(fixture.server.requests.first)
            #expect(request.method == "POST")
            #expect(request.uri == "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders%3Alive/invocations")
            #expect(request.header("host") == "127.0.0.1:\(fixture.server.port)")
            #expect(request.header("content-type") == "application/json")
            #expect(request.header("x-amz-invocation-type") == "RequestResponse")
            #expect(request.header("x-amz-security-token") == nil)
            #expect(request.header("user-agent")?.hasPrefix("lambda-gateway/") == true)
            #expect(request.headers.filter { $0.0.lowercased() == "authorization" }.count == 1)
            #expect(request.bodyText == #"{"hello":"world"}"#)
            let authorization = try #require(request.header("authorization"))
            #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
            #expect(authorization.contains("/us-east-1/lambda/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type, Signature="))

            // Recompute from what was received; moto and botocore check it independently elsewhere.
            let date = try #require(request.header("x-amz-date"))
            let formatter = DateFormatter()
            formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
            formatter.timeZone = TimeZone(identifier: "UTC")
            let expected = SigV4Signer(service: "lambda", region: "us-east-1").sign(
                SigV4Request(
                    method: "POST",
                    path: request.path,
                    headers: [SigV4Header("content-type", "application/json"), SigV4Header("host", request.header("host")!), SigV4Header("x-amz-invocation-type", "RequestResponse")],
                    payloadHash: SigV4Signer.payloadHash(request.body)
                ),
                credentials: testCredentials,
                date: formatter.date(from: date)!
            )
            #expect(authorization == expected.authorization)
        }
    }

    @Test func sessionTokenIsSentAndSigned() async throws {
        var temporary = testCredentials
        temporary.sessionToken = "SESSION"
        try await InvokeFixture.with(credentials: StaticCredentialSource(temporary), handler: { _ in ScriptedResponse(json: "{}") }) { fixture in
            _ = try await fixture.invoke()
            let request = try #require(fixture.server.requests.first)
            #expect(request.header("x-amz-security-token") == "SESSION")
            #expect(request.header("authorization")?.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type;x-amz-security-token,") == true)
        }
    }

    @Test func manyInvokesShareFewPooledConnections() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(json: #"{"n":1}"#, delay: .milliseconds(2)) }) { fixture in
            for _ in 0..<50 { _ = try await fixture.invoke() }
            #expect(fixture.server.connectionCount == 1)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<200 {
                    group.addTask { _ = try await fixture.invoke() }
                }
                try await group.waitForAll()
            }
            #expect(fixture.server.requests.count == 250)
            #expect(fixture.server.connectionCount <= 4)
        }
    }

    @Test func asyncInvocationIsAccepted() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(status: 202, headers: [("x-amzn-RequestId", "r-2")]) }) { fixture in
            let result = try await fixture.invoke(type: .event)
            #expect(result.statusCode == 202)
            #expect(fixture.server.requests.first?.header("x-amz-invocation-type") == "Event")
        }
    }

    @Test func functionErrorsAreResultsWithTheErrorHeader() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(headers: [("X-Amz-Function-Error", "Unhandled")], json: #"{"errorMessage":"boom","errorType":"Error"}"#) }) { fixture in
            let result = try await fixture.invoke()
            #expect(result.functionError == "Unhandled")
            #expect(String(buffer: result.payload).contains("boom"))
        }
    }

    static let errorTable: [(Int, String, Int)] = [
        (400, "InvalidParameterValueException", 502), (400, "InvalidRequestContentException", 502), (400, "RecursiveInvocationException", 502),
        (400, "SnapStartException", 502), (403, "EFSMountFailureException", 502), (403, "InvalidSignatureException", 502),
        (403, "UnrecognizedClientException", 502), (403, "ExpiredTokenException", 502), (403, "AccessDeniedException", 502),
        (404, "ResourceNotFoundException", 502), (408, "EFSMountTimeoutException", 502), (408, "SnapStartTimeoutException", 502),
        (409, "ResourceConflictException", 502), (409, "SnapStartNotReadyException", 502), (410, "EFSIOException", 502),
        (413, "RequestTooLargeException", 413), (413, "RequestEntityTooLargeException", 413), (415, "UnsupportedMediaTypeException", 415 == 415 ? 502 : 0),
        (429, "TooManyRequestsException", 429), (500, "ServiceException", 502), (502, "ENILimitReachedException", 502),
        (502, "KMSAccessDeniedException", 502), (502, "ResourceNotReadyException", 502), (502, "SubnetIPAddressLimitReachedException", 502),
    ]

    @Test(arguments: errorTable)
    func lambdaErrorsAreTyped(status: Int, code: String, clientStatus: Int) async throws {
        try await InvokeFixture.with(handler: { _ in
            ScriptedResponse(
                status: status, headers: [("X-Amzn-ErrorType", "\(code):http://internal.amazon.com/coral/com.amazonaws.awslambda/")], json: #"{"Type":"User","message":"details of \#(code)"}"#)
        }) { fixture in
            let error = await expectInvokeError(.aws(status: status, errorCode: code)) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
            #expect(error?.message == "details of \(code)")
            #expect(error?.clientStatus == clientStatus)
        }
    }

    @Test func errorCodeFromTheBodyAndXML() async throws {
        let answers = [
            ScriptedResponse(status: 404, json: #"{"__type":"com.amazonaws#ResourceNotFoundException","Message":"Function not found"}"#),
            ScriptedResponse(
                status: 403, headers: [("Content-Type", "text/xml")], body: Array("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error></ErrorResponse>".utf8)),
            ScriptedResponse(status: 500, body: Array("garbage".utf8)),
        ]
        let expected: [(LambdaInvokeError.Code, String)] = [
            (.aws(status: 404, errorCode: "ResourceNotFoundException"), "Function not found"),
            (.aws(status: 403, errorCode: "SignatureDoesNotMatch"), "bad sig"),
            (.aws(status: 500, errorCode: "ServiceException"), "Lambda answered 500"),
        ]
        for (answer, (code, message)) in zip(answers, expected) {
            try await InvokeFixture.with(handler: { _ in answer }) { fixture in
                let error = await expectInvokeError(code) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
                #expect(error?.message == message)
            }
        }
    }

    @Test func throttlingCarriesRetryAfterAndIsRetriedOnceWhenAllowed() async throws {
        let throttled = ScriptedResponse(
            status: 429, headers: [("X-Amzn-ErrorType", "TooManyRequestsException"), ("Retry-After", "1")], json: #"{"Reason":"ConcurrentInvocationLimitExceeded","message":"Rate exceeded"}"#)
        try await InvokeFixture.with(handler: { _ in throttled }) { fixture in
            let error = await expectInvokeError(.aws(status: 429, errorCode: "TooManyRequestsException")) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
            #expect(error?.retryAfter == 1)
            #expect(fixture.server.requests.count == 1)  // not idempotent: no retry
        }
        let calls = Mutex(0)
        try await InvokeFixture.with(handler: { _ in
            calls.withLock {
                $0 += 1
                return $0
            } == 1 ? throttled : ScriptedResponse(json: #"{"second":true}"#)
        }) { fixture in
            let result = try await fixture.invoke(mayRetry: true)
            #expect(String(buffer: result.payload) == #"{"second":true}"#)
            #expect(fixture.server.requests.count == 2)
        }
        try await InvokeFixture.with(handler: { _ in throttled }) { fixture in
            _ = await expectInvokeError(.aws(status: 429, errorCode: "TooManyRequestsException")) { () async throws(LambdaInvokeError) in try await fixture.invoke(mayRetry: true) }
            #expect(fixture.server.requests.count == 2)  // one retry, then the 429 goes back
        }
    }

    @Test func slowFunctionTimesOut() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(json: "{}", delay: .seconds(20)) }) { fixture in
            let started = ContinuousClock.now
            _ = await expectInvokeError(.timeout) { () async throws(LambdaInvokeError) in try await fixture.invoke(timeout: .milliseconds(300)) }
            // Cut well before the function's 20 s answer; the margin is for a loaded CI machine.
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }

    @Test func hangingEndpointTimesOut() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(behaviour: .hang) }) { fixture in
            _ = await expectInvokeError(.timeout) { () async throws(LambdaInvokeError) in try await fixture.invoke(timeout: .milliseconds(300)) }
        }
    }

    @Test func connectionResetMidResponseIsAConnectionError() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(json: String(repeating: "x", count: 10_000)).closing(after: 100) }) { fixture in
            _ = await expectInvokeError(.connectionLost) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
        }
    }

    @Test func responseOver6MBIsRefused() async throws {
        let huge = ScriptedResponse(json: "\"" + String(repeating: "a", count: 6_400_000) + "\"")
        try await InvokeFixture.with(handler: { _ in huge }) { fixture in
            _ = await expectInvokeError(.responseTooLarge(limit: 6_291_556)) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
        }
    }

    @Test func untrustedServerCertificateIsRejected() async throws {
        try await InvokeFixture.with(trustServer: false, handler: { _ in ScriptedResponse(json: "{}") }) { fixture in
            _ = await expectInvokeError(.endpointUnreachable) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
            #expect(fixture.server.requests.isEmpty)
        }
    }

    @Test func oversizedPayloadsAreRefusedLocally() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(json: "{}") }) { fixture in
            let sync = "\"" + String(repeating: "a", count: 6_291_455) + "\""
            _ = await expectInvokeError(.payloadTooLarge(limit: 6_291_456)) { () async throws(LambdaInvokeError) in try await fixture.invoke(sync) }
            let async = "\"" + String(repeating: "a", count: 1_048_575) + "\""
            _ = await expectInvokeError(.payloadTooLarge(limit: 1_048_576)) { () async throws(LambdaInvokeError) in try await fixture.invoke(async, type: .event) }
            #expect(fixture.server.requests.isEmpty)
            // Exactly at the limit is allowed.
            _ = try await fixture.invoke(String(repeating: "1", count: 1_048_576), type: .event)
        }
    }

    @Test func noCredentialsMeansNoRequest() async throws {
        struct Empty: CredentialSource {
            func credentials(timeout: Duration) async throws(CredentialsError) -> Credentials {
                throw CredentialsError(.noCredentials, provider: "test", "none configured")
            }
            func authenticationFailed() {}
        }
        try await InvokeFixture.with(credentials: Empty(), handler: { _ in ScriptedResponse(json: "{}") }) { fixture in
            let error = await expectInvokeError(.noCredentials) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
            #expect(error?.clientStatus == 503)
            #expect(fixture.server.requests.isEmpty)
        }
    }

    @Test func authenticationErrorsAskForFreshCredentials() async throws {
        final class Counting: CredentialSource {
            let refreshes = Mutex(0)
            func credentials(timeout: Duration) async throws(CredentialsError) -> Credentials { testCredentials }
            func authenticationFailed() { refreshes.withLock { $0 += 1 } }
        }
        let source = Counting()
        try await InvokeFixture.with(credentials: source, handler: { _ in ScriptedResponse(status: 403, headers: [("X-Amzn-ErrorType", "ExpiredTokenException")], json: #"{"message":"expired"}"#) }) {
            fixture in
            _ = await expectInvokeError(.aws(status: 403, errorCode: "ExpiredTokenException")) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
            #expect(source.refreshes.withLock { $0 } == 1)
        }
    }

    /// The gateway's path: answered on the caller's event loop; with credentials at hand the call
    /// never waits for them (the source's waiting call is never made), and a warm pool's connection
    /// is reused. A source that can only be awaited still signs every call.
    @Test func callsOnAnEventLoopAreAnsweredThereAndTakeCredentialsAtHand() async throws {
        final class AtHand: CredentialSource {
            let awaited = Mutex(0)
            let offersCredentials: Bool
            init(offersCredentials: Bool) { self.offersCredentials = offersCredentials }
            func credentials(timeout: Duration) async throws(CredentialsError) -> Credentials {
                awaited.withLock { $0 += 1 }
                return testCredentials
            }
            func usableCredentials() -> Credentials? { offersCredentials ? testCredentials : nil }
            func authenticationFailed() {}
        }
        for offersCredentials in [true, false] {
            let source = AtHand(offersCredentials: offersCredentials)
            try await InvokeFixture.with(credentials: source, handler: { _ in ScriptedResponse(json: #"{"ok":true}"#) }) { fixture in
                let loop = MultiThreadedEventLoopGroup.singleton.next()
                for _ in 0..<3 {
                    let request = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"))
                    let answered = await withCheckedContinuation { continuation in
                        fixture.client.invoke(request, on: loop) { result in continuation.resume(returning: (loop.inEventLoop, result)) }
                    }
                    #expect(answered.0, "answered on the caller's loop")
                    let payload = try answered.1.get().payload
                    #expect(String(buffer: payload) == #"{"ok":true}"#)
                }
                #expect(source.awaited.withLock { $0 } == (offersCredentials ? 0 : 3))
                #expect(fixture.server.requests.map(\.connectionNumber) == [1, 1, 1])
                #expect(fixture.server.requests.allSatisfy { $0.headers.contains { $0.0.lowercased() == "authorization" } })
            }
        }
    }

    @Test func unreachableEndpoint() async throws {
        let port = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let free = port.localAddress!.port!
        try await port.close()
        let client = try LambdaInvokeClient(
            configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(customEndpoint: "https://127.0.0.1:\(free)")),
            credentials: StaticCredentialSource(testCredentials),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        _ = await expectInvokeError(.endpointUnreachable) { () async throws(LambdaInvokeError) in
            try await client.invoke(InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}")))
        }
        try await client.shutdown()
    }
}

extension ScriptedResponse {
    func closing(after bytes: Int) -> ScriptedResponse {
        var copy = self
        copy.behaviour = .closeMidBody(partialBody: bytes)
        return copy
    }
}

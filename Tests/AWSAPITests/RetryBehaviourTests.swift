import AWSAPI
import NIOPosix
import Synchronization
import TestSupport
import Testing

/// A scripted AWS endpoint on 127.0.0.1: how many requests one call makes, and when it gives up.
@Suite("Retries of AWS calls against a scripted endpoint")
struct RetryBehaviourTests {
    /// Answers the scripted responses in order, then repeats the last one.
    func withServer(_ script: [ScriptedResponse], _ body: (TestHTTPServer) async throws -> Void) async throws {
        let answers = Mutex(script)
        let server = try await TestHTTPServer { _ in
            answers.withLock { $0.count > 1 ? $0.removeFirst() : $0[0] }
        }
        try await withTeardown({ try await body(server) }, teardown: { await server.shutdown() })
    }

    static let throttled = ScriptedResponse(status: 400, json: #"{"__type":"com.amazonaws.ssm#ThrottlingException","message":"Rate exceeded"}"#)
    static let parameter = ScriptedResponse(json: #"{"Parameter":{"Name":"/p","Type":"SecureString","Value":"v1","Version":1}}"#)

    @Test func throttledTwiceThenAnsweredSucceedsWithThreeRequests() async throws {
        let tooMany = ScriptedResponse(status: 429, headers: [("X-Amzn-ErrorType", "ThrottlingException")], json: #"{"message":"Rate exceeded"}"#)
        try await withServer([tooMany, Self.throttled, Self.parameter]) { server in
            try await withClient(try makeClient(endpoint: server.baseURL)) { client in
                let value = try await client.ssm.getParameter(name: "/p")
                #expect(value == "v1")
                #expect(server.requests.count == 3)
                #expect(client.callCounts() == ["GetParameter": 3])
            }
        }
    }

    @Test func serverErrorsAreRetriedUpToTheMaximumAttempts() async throws {
        let failing = ScriptedResponse(status: 500, headers: [("X-Amzn-ErrorType", "ServiceException")], json: #"{"Type":"Service","Message":"internal"}"#)
        try await withServer([failing]) { server in
            try await withClient(try makeClient(endpoint: server.baseURL)) { client in
                let error = await #expect(throws: AWSAPIError.self) { try await client.lambda.listFunctions(marker: nil, maxItems: 50) }
                #expect(error?.code == .aws(status: 500, code: "ServiceException"))
                #expect(error?.message.contains("internal") == true)
                #expect(server.requests.count == 3)
                #expect(client.callCounts() == ["ListFunctions": 3])
            }
        }
    }

    @Test func clientErrorIsNotRetried() async throws {
        let invalid = ScriptedResponse(status: 400, json: #"{"__type":"ValidationException","message":"1 validation error detected"}"#)
        try await withServer([invalid, Self.parameter]) { server in
            try await withClient(try makeClient(endpoint: server.baseURL)) { client in
                let error = await #expect(throws: AWSAPIError.self) { try await client.ssm.putParameter(name: "/p", value: "v") }
                #expect(error?.code == .aws(status: 400, code: "ValidationException"))
                #expect(server.requests.count == 1)
            }
        }
    }

    @Test func retryAfterLongerThanTheCallTimeoutEndsTheCall() async throws {
        let tooMany = ScriptedResponse(
            status: 429, headers: [("Retry-After", "30"), ("X-Amzn-ErrorType", "TooManyRequestsException")], json: #"{"Type":"User","message":"Rate exceeded","Reason":"CallerRateLimitExceeded"}"#)
        try await withServer([tooMany, Self.parameter]) { server in
            let client = try makeClient(endpoint: server.baseURL) { $0.callTimeout = .seconds(5) }
            try await withClient(client) { client in
                let started = ContinuousClock.now
                let error = await #expect(throws: AWSAPIError.self) { try await client.lambda.listTags(resource: "arn:aws:lambda:us-east-1:123456789012:function:orders") }
                #expect(error?.isThrottling == true)
                #expect(error?.code == .aws(status: 429, code: "TooManyRequestsException"))
                #expect(server.requests.count == 1)
                #expect(ContinuousClock.now - started < .seconds(5))
            }
        }
    }

    @Test func authenticationFailureRefreshesCredentialsAndIsNotRetried() async throws {
        let refused = ScriptedResponse(status: 400, json: #"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#)
        try await withServer([refused, Self.parameter]) { server in
            let credentials = CountingCredentialSource(exampleCredentials.fixed)
            try await withClient(try makeClient(endpoint: server.baseURL, credentials: credentials)) { client in
                let error = await #expect(throws: AWSAPIError.self) { try await client.ssm.getParameter(name: "/p") }
                #expect(error?.isAuthenticationFailure == true)
                #expect(credentials.authenticationFailures == 1)
                #expect(server.requests.count == 1)
            }
        }
    }

    @Test func writeLostAfterSendingIsNotSentAgain() async throws {
        try await withServer([ScriptedResponse(behaviour: .closeWithoutResponse)]) { server in
            try await withClient(try makeClient(endpoint: server.baseURL)) { client in
                let error = await #expect(throws: AWSAPIError.self) { try await client.ssm.deleteParameter(name: "/p") }
                #expect(error?.code == .transport)
                #expect(server.requests.count == 1)
            }
        }
    }

    @Test func readLostAfterSendingIsRetried() async throws {
        try await withServer([ScriptedResponse(behaviour: .closeWithoutResponse), Self.parameter]) { server in
            try await withClient(try makeClient(endpoint: server.baseURL)) { client in
                let value = try await client.ssm.getParameter(name: "/p")
                #expect(value == "v1")
                #expect(server.requests.count == 2)
            }
        }
    }

    @Test func refusedConnectionIsRetriedSinceNothingWasSent() async throws {
        // A port that was free a moment ago: nothing listens there.
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        try await withClient(try makeClient(endpoint: "http://127.0.0.1:\(port)")) { client in
            let error = await #expect(throws: AWSAPIError.self) { try await client.ssm.putParameter(name: "/p", value: "v") }
            #expect(error?.code == .transport)
            #expect(error?.message.contains("127.0.0.1:\(port)") == true)
            #expect(client.callCounts() == ["PutParameter": 3])
        }
    }

    @Test func valueOverTheTierLimitIsRefusedBeforeSending() async throws {
        try await withServer([Self.parameter]) { server in
            try await withClient(try makeClient(endpoint: server.baseURL)) { client in
                let value = String(repeating: "x", count: 4097)
                let error = await #expect(throws: AWSAPIError.self) { try await client.ssm.putParameter(name: "/p", value: value, tier: .standard) }
                #expect(error?.code == .invalidRequest)
                #expect(error?.message.contains("Standard") == true)
                #expect(server.requests.isEmpty)
            }
        }
    }
}

import LambdaInvoke
import Testing

@testable import GatewayCore

/// How a failed Invoke call reads in the access log: its flags.
@Suite("Answers to failed Lambda calls")
struct RequestAnswerTests {
    static func throttled(attempts: Int, afterRetry: Bool) -> LambdaInvokeError {
        var error = LambdaInvokeError(.aws(status: 429, errorCode: "TooManyRequestsException"), "Rate exceeded")
        error.attempts = attempts
        error.failedAfterThrottlingRetry = afterRetry
        return error
    }

    @Test func urxOnlyWhenTheThrottlingRetryWasThrottledToo() {
        #expect(RequestProcessor.Answer.invokeFailed(Self.throttled(attempts: 2, afterRetry: true)).flags == .upstreamRetryLimitExceeded)
        // Two requests, the first lost on a stale pooled connection, the second throttled: no retry
        // was exhausted.
        #expect(RequestProcessor.Answer.invokeFailed(Self.throttled(attempts: 2, afterRetry: false)).flags == [])
        #expect(RequestProcessor.Answer.invokeFailed(Self.throttled(attempts: 1, afterRetry: false)).flags == [])
        #expect(RequestProcessor.Answer.invokeFailed(Self.throttled(attempts: 1, afterRetry: false)).details == ResponseCodeDetails.throttled)
    }
}

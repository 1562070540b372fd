import LambdaInvoke
import LambdaPayload
import NIOCore
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

    /// Answers share their fields until one changes (`Answer`'s box): the answers kept as
    /// constants, handed out to every request they answer, are never changed by one of them.
    @Test func aChangedAnswerLeavesTheOneItWasCopiedFromAsItWas() {
        var denied = RequestProcessor.Answer.denied
        denied.flags = .noRouteFound
        denied.attempts = 2
        denied.response.headers.append(HTTPField("x-extra", "1"))
        denied.details = "changed"
        #expect(RequestProcessor.Answer.denied.flags == [] && RequestProcessor.Answer.denied.attempts == nil)
        #expect(RequestProcessor.Answer.denied.response.headers == RequestProcessor.accessDenied.headers)
        #expect(RequestProcessor.Answer.denied.details == ResponseCodeDetails.rbacAccessDenied)
        #expect(denied.flags == .noRouteFound && denied.attempts == 2 && denied.details == "changed")
        #expect(denied.response.headers.last == HTTPField("x-extra", "1") && denied.outcome == .denied)

        var timeout = RequestProcessor.Answer.headerTimeout
        var second = timeout
        timeout.traceID = "a"
        second.traceID = "b"
        #expect(timeout.traceID == "a" && second.traceID == "b" && RequestProcessor.Answer.headerTimeout.traceID == nil)
    }

    /// A copy made to be changed carries every field of the answer it was copied from.
    @Test func aCopyCarriesEveryField() {
        var original = RequestProcessor.Answer(response: .error(status: 502, code: "X", message: "y"), outcome: .functionError, details: "d", lambdaErrorType: .invalidFunctionResponse)
        original.flags = .upstreamConnectionTermination
        original.lambdaCallNanoseconds = 7
        original.attempts = 2
        original.upstreamHost = "lambda.us-east-1.amazonaws.com:443"
        original.upstreamLocalAddress = "127.0.0.1:5000"
        original.traceID = "1-abc"
        original.transportFailureReason = "reset"
        original.streamStarted = NIODeadline.uptimeNanoseconds(42)
        original.streamed = .incomplete
        var copy = original
        copy.details = "changed"
        #expect(copy.response.status == 502 && copy.outcome == .functionError && copy.lambdaErrorType == .invalidFunctionResponse)
        #expect(copy.flags == .upstreamConnectionTermination && copy.lambdaCallNanoseconds == 7 && copy.attempts == 2)
        #expect(copy.upstreamHost == "lambda.us-east-1.amazonaws.com:443" && copy.upstreamLocalAddress == "127.0.0.1:5000" && copy.traceID == "1-abc")
        #expect(copy.transportFailureReason == "reset" && copy.streamStarted == NIODeadline.uptimeNanoseconds(42) && copy.streamed == .incomplete)
        #expect(original.details == "d" && copy.details == "changed")
    }
}

import LambdaInvoke
import LambdaPayload
import Logging
import NIOCore

/// The call of a service in `RESPONSE_STREAM` mode (`InvokeWithResponseStream`): the answer's head
/// is known once the function's first bytes decide it, and the body follows as it arrives
/// (`ResponseStream`); the connection's handler writes it piece by piece.
extension RequestProcessor {
    /// The signed streaming call, up to its head (or the answer that replaces it).
    /// `cancellation`: the caller went away; the call is cancelled, before its first byte too.
    func streamed(_ call: Call, on eventLoop: any EventLoop, cancellation: NIOLoopBound<RequestCancellation>? = nil) async -> Processed {
        let started = NIODeadline.now()
        let invoker = self.invoker
        let (beginning, stream) = await withCheckedContinuation { (continuation: CheckedContinuation<(ResponseStream.Beginning, ResponseStream), Never>) in
            eventLoop.execute {
                let stream = ResponseStream(eventLoop: eventLoop, budget: call.invocation.budget)
                stream.began = { continuation.resume(returning: ($0, stream)) }
                stream.call = invoker.invokeStreaming(call.invocation, on: eventLoop) { event in stream.receive(event) }
                // A caller that leaves while the function has not written holds no call (nor its
                // stream slot); after the head, the handler abandons the stream itself.
                cancellation?.value.onCancel { stream.clientGone() }
            }
        }
        switch beginning {
        case .answer(var answer):
            // A refusal for too many streams is counted and logged per request, not logged here: a
            // caller could make one a request.
            if answer.outcome == .invokeError && !answer.flags.contains(.upstreamOverflow) {
                logger.info("lambda invocation failed", metadata: ["service": "\(call.serviceName)", "error": "\(LogSafe.text(answer.details, limit: 1024))"])
            }
            answer.lambdaCallNanoseconds = Int((NIODeadline.now() - started).nanoseconds)
            answer.attempts = stream.attempts
            describeCall(call, in: &answer)
            return Processed(answer: answer, heldBytes: 0)
        case .head(var head):
            // As on a buffered answer: Lambda's request id, to find the call in CloudWatch.
            if let requestID = stream.requestID { head.headers.append(HTTPField("x-amzn-requestid", requestID)) }
            var answer = Answer(response: head, outcome: .invoked, details: ResponseCodeDetails.viaUpstream)
            answer.upstreamLocalAddress = stream.upstreamLocalAddress
            describeCall(call, in: &answer)
            if call.method == "HEAD" || head.status == 204 || head.status == 304 {
                // No body may follow this head: the rest of the stream is not read.
                eventLoop.execute { stream.abandon() }
                answer.lambdaCallNanoseconds = Int((NIODeadline.now() - started).nanoseconds)
                return Processed(answer: answer, heldBytes: 0)
            }
            answer.streamStarted = started
            return Processed(answer: answer, heldBytes: 0, stream: stream)
        }
    }

    /// A streamed answer's record once its last part is written (or it broke): the call's
    /// duration, its attempts, and, for a stream that broke, why.
    func streamEnded(_ answer: Answer, stream: ResponseStream, failure: ResponseStream.StreamFailure?, service: String) -> Answer {
        var answer = answer
        if let started = answer.streamStarted {
            answer.lambdaCallNanoseconds = Int((NIODeadline.now() - started).nanoseconds)
        }
        answer.attempts = stream.attempts
        answer.streamed = failure == nil ? .complete : .incomplete
        if let failure {
            answer.flags.formUnion(failure.flags)
            if let code = failure.functionErrorCode {
                answer.outcome = .functionError
                answer.lambdaErrorType = LambdaErrorType(functionError: code)
                answer.details = ResponseCodeDetails.streamFunctionError
            } else {
                answer.outcome = .invokeError
                answer.details = ResponseCodeDetails.streamBroken
                answer.transportFailureReason = failure.message
            }
            logger.info("streamed answer broke off", metadata: ["service": "\(service)", "error": "\(LogSafe.text(failure.message, limit: 1024))"])
        }
        return answer
    }
}

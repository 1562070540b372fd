import LambdaInvoke
import LambdaPayload
import NIOCore

/// A streamed Lambda answer on its way to the client, on the client connection's event loop.
///
/// It takes the Invoke stream's events (`InvokeStreamEvent`) and makes the response: the head once
/// the function's first bytes decide it (`StreamingResponseSplitter`: a function-URL prelude, or a
/// 200 whose body is every byte), then body pieces as they arrive, then the end. Until the
/// connection's handler is ready to write (`attach`), pieces wait here; their bytes stay counted in
/// the connection's `ResponseBudget`, so reading from Lambda pauses rather than the queue growing.
/// Each body piece takes its own bytes from the budget and the payload that brought it gives its
/// back; the prelude the splitter holds while it decides the head (at most the header limit) is
/// not counted, so that a head still being read never waits for room it cannot free.
final class ResponseStream: @unchecked Sendable {
    // @unchecked: touched on `eventLoop` only (the stream's events arrive there).

    /// What the connection's handler writes after the head.
    enum Part {
        /// Body bytes, and the budget bytes they hold (handed over to the write, or given back).
        case body(ByteBuffer, heldBytes: Int)
        /// The end. `failure` set: the answer must not look complete (HTTP/1.1 closes the connection
        /// before the last chunk, HTTP/2 resets the stream).
        case end(failure: StreamFailure?)
    }

    /// Why a stream that had begun did not complete.
    struct StreamFailure: Error {
        var message: String
        /// Envoy's flag for it: the connection lost (`UC`) or the deadline (`UT`).
        var flags: ResponseFlags
        /// The function failed mid-stream (InvokeComplete's `ErrorCode`), rather than the transport.
        var functionErrorCode: String?
    }

    /// How the stream began: with a response head, or with an answer that replaces it (the call
    /// failed, the function failed before its first byte, or its prelude is invalid).
    enum Beginning {
        case head(LambdaHTTPResponse)
        case answer(RequestProcessor.Answer)
    }

    private enum State {
        /// Waiting for Lambda's answer to decide the head.
        case beginning(StreamingResponseSplitter?)
        /// The head is out; parts wait in `queued` until a consumer is attached.
        case streaming(StreamingResponseSplitter)
        /// The end is queued or delivered.
        case ended
    }

    let eventLoop: any EventLoop
    private let budget: ResponseBudget?
    private var state = State.beginning(nil)
    /// Called once with the head, or the answer that replaces it.
    var began: ((Beginning) -> Void)?
    private var queued = CircularBuffer<Part>()
    private var consumer: ((Part) -> Void)?
    private var start: InvokeStreamStart?
    /// Requests sent to Lambda for the call, for the access log.
    private(set) var attempts: Int?
    /// The consumer stopped taking parts (the client went away): the rest is dropped.
    private var abandoned = false
    /// Cancels the Invoke call, before its answer began too.
    var call: InvokeStreamHandle?

    /// Set `began` before the first event.
    init(eventLoop: any EventLoop, budget: ResponseBudget?) {
        self.eventLoop = eventLoop
        self.budget = budget
    }

    var upstreamLocalAddress: String? { start?.upstreamLocalAddress }
    /// Lambda's `x-amzn-RequestId` for the call.
    var requestID: String? { start?.requestID }

    /// The Invoke stream's events, in order.
    func receive(_ event: InvokeStreamEvent) {
        eventLoop.preconditionInEventLoop()
        switch event {
        case .started(let start):
            self.start = start
            attempts = start.attempts
            if case .beginning(nil) = state {
                state = .beginning(StreamingResponseSplitter(contentType: start.contentType))
            }
        case .payload(let bytes, let heldBytes):
            if case .streaming = state {
                // The head is out: the bytes are a body piece as they are, with the bytes they hold.
                if bytes.readableBytes > 0 { deliver(.body(bytes, heldBytes: heldBytes)) } else if heldBytes > 0 { budget?.release(heldBytes) }
                return
            }
            // The payload's bytes go back once the pieces made of it took theirs.
            defer { if heldBytes > 0 { budget?.release(heldBytes) } }
            pieces { splitter throws(PayloadError) in try splitter.append(bytes) }
        case .completed(let completion):
            if let code = completion.errorCode {
                failed(StreamFailure(message: "the function failed mid-stream: \(code)", flags: [], functionErrorCode: code), functionError: completion)
                return
            }
            pieces { splitter throws(PayloadError) in try splitter.finish() }
            end(failure: nil)
        case .failed(let error):
            attempts = error.attempts
            failed(Self.failure(error), callError: error)
        }
    }

    /// The consumer of the parts after the head; queued parts go to it at once.
    func attach(_ consumer: @escaping (Part) -> Void) {
        eventLoop.preconditionInEventLoop()
        while let part = queued.popFirst() { consumer(part) }
        if case .ended = state { return }
        self.consumer = consumer
    }

    /// The client is gone, or will never read the body (a HEAD request): the call is cancelled and
    /// what is queued or still comes is dropped, its budget bytes given back.
    func abandon() {
        eventLoop.preconditionInEventLoop()
        abandoned = true
        consumer = nil
        while let part = queued.popFirst() {
            if case .body(_, let held) = part, held > 0 { budget?.release(held) }
        }
        if case .ended = state { return }
        if let call {
            call.cancel()
        } else {
            start?.cancel()
        }
    }

    /// The caller went away (`RequestCancellation`): a stream whose head is not decided yet is
    /// cancelled too, so a caller that leaves while the function has not written holds no call.
    func clientGone() {
        if case .ended = state { return }
        abandon()
    }

    // MARK: Events

    /// Feeds the splitter, and hands on what it gives: the head (once), then body pieces, each
    /// taking its bytes from the budget.
    private func pieces(_ feed: (inout StreamingResponseSplitter) throws(PayloadError) -> [StreamingResponseSplitter.Event]) {
        var splitter: StreamingResponseSplitter
        var headOut: Bool
        switch state {
        case .beginning(let current?):
            (splitter, headOut) = (current, false)
        case .streaming(let current):
            (splitter, headOut) = (current, true)
        case .beginning(nil), .ended:
            return
        }
        let events: [StreamingResponseSplitter.Event]
        do {
            events = try feed(&splitter)
        } catch {
            start?.cancel()
            failed(StreamFailure(message: error.message, flags: []), invalid: error)
            return
        }
        for event in events {
            switch event {
            case .head(let head):
                headOut = true
                state = .streaming(splitter)
                began?(.head(head))
                began = nil
            case .body(let body):
                if let budget { budget.take(body.readableBytes) }
                deliver(.body(body, heldBytes: budget == nil ? 0 : body.readableBytes))
            }
        }
        if case .ended = state { return }
        state = headOut ? .streaming(splitter) : .beginning(splitter)
    }

    private func deliver(_ part: Part) {
        if abandoned {
            if case .body(_, let held) = part, held > 0 { budget?.release(held) }
            return
        }
        if let consumer {
            consumer(part)
        } else {
            queued.append(part)
        }
    }

    private func end(failure: StreamFailure?) {
        if case .ended = state { return }
        state = .ended
        deliver(.end(failure: failure))
        consumer = nil
    }

    /// The stream failed: before its head, the answer replaces it (as in a buffered call); after,
    /// the response ends incomplete.
    private func failed(_ failure: StreamFailure, callError: LambdaInvokeError? = nil, functionError: InvokeStreamCompletion? = nil, invalid: PayloadError? = nil) {
        guard case .beginning = state, let began else {
            end(failure: failure)
            return
        }
        state = .ended
        self.began = nil
        var answer: RequestProcessor.Answer
        if let callError {
            answer = .invokeFailed(callError)
        } else if let functionError {
            // The function failed before its first byte decided a head: a function error, as a
            // buffered call's (502, `x-amz-function-error`).
            let code = functionError.errorCode ?? "Unhandled"
            answer = RequestProcessor.Answer(
                response: .error(status: 502, code: code, message: functionError.errorDetails ?? "the function failed", headers: [HTTPField("x-amz-function-error", code)]),
                outcome: .functionError, details: ResponseCodeDetails.functionError, lambdaErrorType: LambdaErrorType(functionError: code)
            )
        } else {
            let message = invalid?.message ?? failure.message
            answer = RequestProcessor.Answer(
                response: .error(status: 502, code: "InvalidFunctionResponse", message: message), outcome: .functionError,
                details: ResponseCodeDetails.invalidFunctionResponse, lambdaErrorType: .invalidFunctionResponse
            )
        }
        answer.upstreamLocalAddress = start?.upstreamLocalAddress ?? callError?.upstreamLocalAddress
        began(.answer(answer))
    }

    static func failure(_ error: LambdaInvokeError) -> StreamFailure {
        switch error.code {
        case .timeout: StreamFailure(message: error.message, flags: .upstreamRequestTimeout)
        default: StreamFailure(message: error.message, flags: .upstreamConnectionTermination)
        }
    }
}

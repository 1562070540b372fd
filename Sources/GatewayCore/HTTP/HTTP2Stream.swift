import LambdaPayload
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// One request on an HTTP/2 stream of a client connection, read and answered as frames: the
/// stream's logic is `HTTP2StreamStateMachine`; this object carries out its actions, writing its
/// frames through the connection's handler (`HTTP2ConnectionHandler`, which routes the stream's
/// frames and events here). An answer is a HEADERS frame and one DATA frame that ends the stream
/// (HEADERS alone for an empty body); a streamed answer is its HEADERS, a DATA frame per piece, and
/// an empty DATA frame with END_STREAM.
///
/// A stream whose body pauses longer than the body timeout is answered 408 without a Lambda call;
/// a request that arrives while the connection's answers wait unread (`ConnectionOutput`) is
/// refused with RST_STREAM(REFUSED_STREAM): no Lambda call, nothing written that the client would
/// have to read (a client may retry a refused stream), so a client that does not read cannot make
/// the gateway hold more.
final class HTTP2Stream {
    // Used on the connection's event loop only.
    let id: HTTP2StreamID
    private let processor: RequestProcessor
    private let connection: ClientConnection
    private let output: ConnectionOutput
    private let process: RequestProcessor.Process
    private var machine: HTTP2StreamStateMachine
    private let bodyTimer: QuietTimer
    /// This stream's request, from its first frame.
    private var exchange = RequestExchange()
    /// A streamed answer being relayed, after its head: the answer, its body bytes so far, and
    /// whether every write reached the connection.
    private var relay: (stream: ResponseStream, answer: RequestProcessor.Answer, bodyBytes: Int, written: Bool)?
    /// The request being processed, cancelled if the stream closes before its answer.
    private var inFlight: RequestCancellation?

    /// `process`: the processor's Lambda call, unless a test answers requests itself.
    init(id: HTTP2StreamID, processor: RequestProcessor, connection: ClientConnection, output: ConnectionOutput, limit: Int, process: @escaping RequestProcessor.Process) {
        self.id = id
        self.processor = processor
        self.connection = connection
        self.output = output
        self.process = process
        let budget = output.budget
        self.machine = HTTP2StreamStateMachine(
            limit: limit,
            admit: { RequestReader.refusal(by: processor, of: $0, fields: $1, on: connection) },
            budgetIsSpent: { budget.isSpent }
        )
        self.bodyTimer = QuietTimer(timeout: TimeAmount(processor.settings.clientBodyTimeout))
    }

    // MARK: Events, from the connection's handler

    /// Whether the stream was reset as malformed (`HTTP2FieldRules`), which its connection counts.
    private(set) var isMalformed = false

    /// A frame of this stream: its request's HEADERS (or trailers) and DATA.
    func read(_ payload: HTTP2Frame.FramePayload, context: ChannelHandlerContext) {
        switch payload {
        case .headers(let headers):
            if headers.endStream { requestEnded = true }
            guard !machine.isAnswering else { return }
            if exchange.head == nil {
                exchange.started = .now()
            }
            let action = machine.headersReceived(headers.headers, endStream: headers.endStream)
            if exchange.head == nil, let head = machine.requestHead { exchange.head = head }
            perform(action, context: context)
        case .data(let data):
            if data.endStream { requestEnded = true }
            guard !machine.isAnswering, case .byteBuffer(let buffer) = data.data else { return }
            exchange.requestBodyBytes += buffer.readableBytes
            perform(machine.dataReceived(buffer, endStream: data.endStream), context: context)
        default:
            break  // RST_STREAM, WINDOW_UPDATE, PRIORITY: NIO's handler acts on them
        }
    }

    /// The end of a read: a body still arriving keeps the body timer.
    func readComplete(context: ChannelHandlerContext) {
        perform(machine.readComplete(), context: context)
    }

    /// The stream closed (both ends done, reset by either side, or the connection went away),
    /// before, during or after the answer.
    func closed(context: ChannelHandlerContext) {
        isClosed = true
        bodyTimer.cancel()
        perform(machine.streamClosed(), context: context)
    }

    /// The client's window for this stream is worth opening: a body is still arriving.
    var isReadingBody: Bool { machine.isReadingBody }

    /// The client sent END_STREAM: an answer's own END_STREAM closes the stream.
    private var requestEnded = false

    /// The client's window for the answer, as NIO last reported it.
    private var outboundWindow: Int?

    /// NIO reports the client's window for the answer: whether it grew (the client opened it; the
    /// gateway's own DATA frames and the client's DATA leave it as it was or shrink it).
    func outboundWindowChanged(to size: Int) -> Bool {
        defer { outboundWindow = size }
        return outboundWindow.map { size > $0 } ?? false
    }

    /// The stream closed; nothing more can be written to it.
    private(set) var isClosed = false

    /// `payload` as a frame of this stream, to the connection. `flush`: now, or at the end of the
    /// connection's read under way (`ConnectionOutput.flushAfterRead`).
    @discardableResult
    private func write(_ payload: HTTP2Frame.FramePayload, flush: Bool = true, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let written = context.write(NIOAny(HTTP2Frame(streamID: id, payload: payload)))
        if flush { output.flushAfterRead(context) }
        return written
    }

    // MARK: Actions

    private func perform(_ action: HTTP2StreamStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .writeContinue:
            write(.headers(.init(headers: Self.continueHeaders)), context: context)
        case .touchBodyTimer:
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            bodyTimer.touch(on: context.eventLoop) {
                let (stream, context) = loopBound.value
                stream.perform(stream.machine.bodyTimerFired(), context: context)
            }
        case .startProcessing(let head, let request):
            bodyTimer.cancel()
            exchange.head = head
            start(request, context: context)
        case .refuseStream:
            bodyTimer.cancel()
            processor.ended(exchange, answer: .rejected(status: 503, code: "ConnectionBusy", message: ""), responseBodyBytes: 0, written: true, connection: connection)
            write(.rstStream(.refusedStream), context: context)
        case .resetMalformed(let violation):
            isMalformed = true
            bodyTimer.cancel()
            processor.logger.debug("malformed HTTP/2 request; stream reset", metadata: ["stream": "\(id)", "reason": "\(violation)"])
            write(.rstStream(.protocolError), context: context)
        case .answerEarly(let answer, let head, let closure):
            bodyTimer.cancel()
            if let closure { processor.metrics.connectionClosed(closure) }
            respond(answer, head: head, context: context, close: true)
        case .writeAnswer(let processed, let head):
            if let stream = processed.stream {
                relay(stream, answer: processed.answer, head: head, context: context)
            } else {
                respond(processed.answer, head: head, context: context, close: false, handingOver: processed.heldBytes)
            }
        case .dropAnswer(let processed):
            if processed.heldBytes > 0 { output.budget.release(processed.heldBytes) }
            if let stream = processed.stream {
                stream.abandon()
                var answer = processor.streamEnded(processed.answer, stream: stream, failure: nil, service: connection.serviceName)
                answer.streamed = .incomplete
                processor.ended(exchange, answer: answer, responseBodyBytes: 0, written: false, connection: connection)
            } else {
                processor.ended(exchange, answer: processed.answer, responseBodyBytes: 0, written: false, connection: connection)
            }
        case .cancelProcessing:
            inFlight?.cancel()
            inFlight = nil
        case .abandonRelay:
            abandonRelay()
        }
    }

    private func start(_ request: GatewayRequest, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let cancellation = RequestCancellation()
        inFlight = cancellation
        starting = true
        defer { starting = false }
        process(request, context.eventLoop, cancellation) { processed in
            let (stream, context) = loopBound.value
            if stream.starting {
                // Answered within the read that brought the request (a refusal): answered after
                // it. Flushes wait for the end of a read, and a draining connection may close as
                // the stream count drops to zero within that read.
                context.eventLoop.execute { stream.answerReady(processed, context: context) }
            } else {
                stream.answerReady(processed, context: context)
            }
        }
    }

    private func answerReady(_ processed: RequestProcessor.Processed, context: ChannelHandlerContext) {
        inFlight = nil
        perform(machine.answerReady(processed), context: context)
    }

    /// `process` is running: an answer now comes from within the read that started it.
    private var starting = false

    // MARK: Buffered answers

    private func respond(_ answer: RequestProcessor.Answer, head: HTTPRequestHead, context: ChannelHandlerContext, close: Bool, handingOver held: Int = 0) {
        let response = answer.response
        let sendsBody = response.body.readableBytes > 0 && head.method != .HEAD
        let headers = HPACKHeaders(answerHead: response, contentLength: response.body.readableBytes)
        let done: EventLoopFuture<Void>
        if sendsBody {
            write(.headers(.init(headers: headers)), flush: false, context: context)
            done = write(.data(.init(data: .byteBuffer(response.body), endStream: true)), flush: false, context: context)
        } else {
            done = write(.headers(.init(headers: headers, endStream: true)), flush: false, context: context)
        }
        if output.openStreams == 0 {
            // The connection's last open stream just ended (NIO closes a stream as a HEADERS frame
            // with END_STREAM is written; a DATA frame's closes it as the flush sends it): a
            // draining connection closes one loop task later (`HTTP2Drain`), which could come
            // before the end of the round, so this answer does not wait for it.
            output.flushAfterRead(context)
        } else {
            output.flush(context)
        }
        var exchange = self.exchange
        exchange.responded = .now()
        let bodyBytes = sendsBody ? response.body.readableBytes : 0
        // Counted before the client can see the stream end, then the stream is ended.
        output.writing(bodyBytes, done: done, handingOver: held) { [self] written in
            processor.ended(exchange, answer: answer, responseBodyBytes: bodyBytes, written: written, connection: connection)
            answerWritten(written, stopRequest: close, context: context)
        }
    }

    /// An answer's last frame was written, or failed. NIO refuses a frame that breaks the stream's
    /// rules (a stream error, with no RST_STREAM of its own): the stream is reset then, rather than
    /// left open with nothing more to come. A complete answer to a request the client is still
    /// sending (`stopRequest`) is followed by RST_STREAM(NO_ERROR), which asks it to stop
    /// (RFC 9113 §8.1); a client that sent all of its request was closed by the answer's END_STREAM.
    private func answerWritten(_ written: Bool, stopRequest: Bool, context: ChannelHandlerContext) {
        guard !isClosed else { return }
        if !written {
            write(.rstStream(.internalError), context: context)
        } else if stopRequest && !requestEnded {
            write(.rstStream(.noError), context: context)
        }
    }

    static let continueHeaders: HPACKHeaders = [":status": "100"]

    // MARK: Streamed answers

    /// A streamed answer: its head now, then DATA frames as its pieces arrive, then END_STREAM; a
    /// stream that breaks off is reset instead (RST_STREAM INTERNAL_ERROR), so it never looks complete.
    private func relay(_ stream: ResponseStream, answer: RequestProcessor.Answer, head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard !isClosed, context.channel.isActive else {
            machine.relayEnded()
            stream.abandon()
            var answer = processor.streamEnded(answer, stream: stream, failure: nil, service: connection.serviceName)
            answer.streamed = .incomplete
            processor.ended(exchange, answer: answer, responseBodyBytes: 0, written: false, connection: connection)
            return
        }
        write(.headers(.init(headers: HPACKHeaders(answerHead: answer.response, contentLength: nil))), context: context)
        exchange.responded = .now()
        relay = (stream, answer, 0, true)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        stream.attach { part in
            let (owner, context) = loopBound.value
            owner.relayPart(part, context: context)
        }
    }

    private func relayPart(_ part: ResponseStream.Part, context: ChannelHandlerContext) {
        guard let current = relay else {
            if case .body(_, let held) = part, held > 0 { output.budget.release(held) }
            return
        }
        switch part {
        case .body(let piece, let held):
            guard piece.readableBytes > 0 else {
                if held > 0 { output.budget.release(held) }
                return
            }
            relay?.bodyBytes += piece.readableBytes
            let written = write(.data(.init(data: .byteBuffer(piece))), context: context)
            output.writing(piece.readableBytes, done: written, handingOver: held) { [self] ok in
                if !ok { relay?.written = false }
            }
        case .end(let failure?):
            relay = nil
            machine.relayEnded()
            let answer = processor.streamEnded(current.answer, stream: current.stream, failure: failure, service: connection.serviceName)
            processor.ended(exchange, answer: answer, responseBodyBytes: current.bodyBytes, written: current.written, connection: connection)
            write(.rstStream(.internalError), context: context)
        case .end(nil):
            relay = nil
            machine.relayEnded()
            let done = write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)), context: context)
            let exchange = self.exchange
            output.writing(0, done: done) { [self] ok in
                var answer = processor.streamEnded(current.answer, stream: current.stream, failure: nil, service: connection.serviceName)
                if !(ok && current.written) { answer.streamed = .incomplete }
                processor.ended(exchange, answer: answer, responseBodyBytes: current.bodyBytes, written: ok && current.written, connection: connection)
                answerWritten(ok, stopRequest: false, context: context)
            }
        }
    }

    private func abandonRelay() {
        guard let current = relay else { return }
        relay = nil
        current.stream.abandon()
        var answer = processor.streamEnded(current.answer, stream: current.stream, failure: nil, service: connection.serviceName)
        answer.streamed = .incomplete
        processor.ended(exchange, answer: answer, responseBodyBytes: current.bodyBytes, written: false, connection: connection)
    }
}

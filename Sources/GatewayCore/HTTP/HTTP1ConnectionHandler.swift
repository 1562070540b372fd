import LambdaPayload
import NIOCore
import NIOHTTP1

/// An HTTP/1.x connection (mesh-identity.md §9.2): keep-alive, requests answered in order, each
/// answer written as one buffer.
///
/// It stands in for NIO's `HTTPServerPipelineHandler`, `HTTPResponseEncoder`, response-header
/// validator and protocol-error handler. Those cost four handler passes for each of the three parts
/// of every answer, and the pipelining handler switched read interest off and on around each
/// request (two `epoll_ctl` calls). Here reading stops only while a pipelined request waits behind
/// the one in flight.
///
/// Slow clients are bounded: a request head must be complete within the head timeout of its first
/// byte (a new connection's first one within it of the connection), a body may not pause longer
/// than the body timeout, and a request does not start while the connection's answers wait unread
/// (`ConnectionOutput`). A timer runs only while such a wait is under way, never on the fast path.
final class HTTP1ConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: all state is touched on the channel's event loop only; the processing task hops back.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let processor: RequestProcessor
    private let connection: ClientConnection
    private let output: ConnectionOutput
    private var reader: RequestReader
    /// The request being answered; parts that arrive meanwhile wait in `queued`.
    private var inFlight: HTTPRequestHead?
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// A `read()` held back while a pipelined request waits.
    private var readHeld = false
    /// Draining (`ChannelShouldQuiesceEvent`): close once the request in flight is answered.
    private var closeAfterAnswer = false
    private var closing = false
    /// Armed while a request head is incomplete.
    private var headTimer: Scheduled<Void>?
    /// Heads received so far: the head timer fires only if none came since it was armed.
    private var heads = 0
    /// Request parts the current read delivered: a read that delivered none left bytes of a head
    /// in the decoder.
    private var partsThisRead = 0
    /// Armed while a request body is incomplete.
    private let bodyTimer: QuietTimer

    init(processor: RequestProcessor, connection: ClientConnection, output: ConnectionOutput, limit: Int) {
        self.processor = processor
        self.connection = connection
        self.output = output
        self.reader = RequestReader(limit: limit)
        self.bodyTimer = QuietTimer(timeout: TimeAmount(processor.settings.clientBodyTimeout))
    }

    /// Between requests: nothing in flight, nothing half read, nothing queued.
    private var isIdle: Bool { inFlight == nil && reader.isIdle && queued.isEmpty }

    func handlerAdded(context: ChannelHandlerContext) {
        // The connection's first request head is due within the head timeout.
        armHeadTimer(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelReadTimers()
    }

    private func cancelReadTimers() {
        headTimer?.cancel()
        headTimer = nil
        bodyTimer.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        partsThisRead += 1
        if case .head = part { heads += 1 }
        guard !closing else { return }
        if inFlight != nil || !queued.isEmpty {
            queued.append(part)
            return
        }
        handle(part, context: context)
    }

    /// After each read: a read that delivered nothing left part of a head in the decoder, which
    /// starts the head timer (also behind a request in flight); a body still arriving keeps the
    /// body timer.
    func channelReadComplete(context: ChannelHandlerContext) {
        defer { partsThisRead = 0 }
        guard !closing else { return }
        if partsThisRead == 0 && headTimer == nil && (inFlight != nil || reader.isIdle) {
            armHeadTimer(context: context)
        }
        guard inFlight == nil, queued.isEmpty else { return }
        if reader.isReadingBody {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            bodyTimer.touch(on: context.eventLoop) {
                let (handler, context) = loopBound.value
                guard !handler.closing, handler.inFlight == nil, handler.reader.isReadingBody else { return }
                // The body stopped arriving: the request is dropped without a Lambda call.
                handler.processor.metrics.connectionClosed(.clientBodyTimeout)
                handler.processor.answered(.rejected(.error(status: 408, code: "RequestTimeout", message: "the request body paused for longer than the body timeout")), connection: handler.connection)
                handler.closeWithBareAnswer(status: 408, context: context)
            }
        }
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        if case .head = part, headTimer != nil {
            // The head is complete: its timer is done (the body's is armed after the read if needed).
            headTimer?.cancel()
            headTimer = nil
        }
        switch reader.receive(part, processor: processor, connection: connection) {
        case .none:
            break
        case .refuse(let answer, let head, let close):
            processor.answered(answer, connection: connection)
            write(answer.response, for: head, close: close || closeAfterAnswer || Self.endsConnection(head), context: context)
        case .sendContinue(let head):
            var buffer = context.channel.allocator.buffer(capacity: 32)
            HTTP1ResponseEncoder.writeContinue(version: head.version, into: &buffer)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case .process(let head, let request):
            inFlight = head
            cancelReadTimers()
            guard output.budget.isSpent else {
                start(request, head: head, context: context)
                return
            }
            // Earlier answers wait unread: this request starts once the client has read enough.
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            output.budget.whenAvailable { available in
                guard available else { return }
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    if !handler.closing && context.channel.isActive { handler.start(request, head: head, context: context) }
                }
            }
        }
    }

    private func start(_ request: GatewayRequest, head: HTTPRequestHead, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        processor.process(request, connection: connection, budget: output.budget, answeringOn: context.eventLoop).whenSuccess { processed in
            let (handler, context) = loopBound.value
            handler.answered(processed, for: head, context: context)
        }
    }

    /// HTTP/1.0 without keep-alive, `Connection: close`, and an `Upgrade` (the decoder stops
    /// parsing after one: the request is answered as a plain one, then the connection closes).
    private static func endsConnection(_ head: HTTPRequestHead) -> Bool {
        !head.isKeepAlive || head.headers.contains(name: "upgrade")
    }

    private func answered(_ processed: RequestProcessor.Processed, for head: HTTPRequestHead, context: ChannelHandlerContext) {
        inFlight = nil
        guard !closing else {
            output.budget.release(processed.heldBytes)
            return
        }
        write(processed.response, for: head, close: closeAfterAnswer || Self.endsConnection(head), handingOver: processed.heldBytes, context: context)
        // Pipelined requests, in order, until one is in flight again.
        while inFlight == nil, !closing, let next = queued.popFirst() {
            handle(next, context: context)
        }
        if queued.isEmpty && readHeld && !closing {
            readHeld = false
            context.read()
        }
    }

    private func write(_ response: LambdaHTTPResponse, for head: HTTPRequestHead, close: Bool, handingOver held: Int = 0, context: ChannelHandlerContext) {
        let (bytes, largeBody) = HTTP1ResponseEncoder.encode(response, version: head.version, bodyless: head.method == .HEAD, close: close, allocator: context.channel.allocator)
        let size = bytes.readableBytes + (largeBody?.readableBytes ?? 0)
        if let largeBody { context.write(wrapOutboundOut(bytes), promise: nil) }
        let written = context.writeAndFlush(wrapOutboundOut(largeBody ?? bytes))
        output.writing(size, done: written, handingOver: held)
        if close {
            closing = true
            written.whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Reading pauses while a pipelined request waits behind the one in flight, so a client cannot
    /// queue requests without bound; otherwise it never stops.
    func read(context: ChannelHandlerContext) {
        if queued.isEmpty {
            context.read()
        } else {
            readHeld = true
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is IdleStateHandler.IdleStateEvent:
            // The connection's idle timeout: close between requests only, never while one waits.
            if isIdle { context.close(promise: nil) }
        case is ChannelShouldQuiesceEvent:
            // Draining: an idle connection closes now, a busy one after its answer (`connection: close`).
            if isIdle {
                closing = true
                context.close(promise: nil)
            } else {
                closeAfterAnswer = true
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// The client is gone: requests it pipelined are dropped, never started (each would invoke
    /// the function for nobody).
    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        queued.removeAll()
        cancelReadTimers()
        context.fireChannelInactive()
    }

    /// A request that cannot be parsed: headers over the limits get 431, anything else 400, and the
    /// connection closes (the decoder cannot go on). Any other error (TLS, the socket, bytes the
    /// decoder would have to buffer without bound) closes it too.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            closing = true
            context.close(promise: nil)
            return
        }
        closeWithBareAnswer(status: parserError == .headerOverflow ? 431 : 400, context: context)
    }

    /// Answers `status` with no body when nothing is in flight, and closes.
    private func closeWithBareAnswer(status: Int, context: ChannelHandlerContext) {
        cancelReadTimers()
        if !closing && inFlight == nil {
            var buffer = context.channel.allocator.buffer(capacity: 64)
            HTTP1ResponseEncoder.writeBare(status: status, into: &buffer)
            closing = true
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
        } else {
            closing = true
            context.close(promise: nil)
        }
    }

    // MARK: Read timeouts

    private func armHeadTimer(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let headsBefore = heads
        headTimer = context.eventLoop.scheduleTask(in: TimeAmount(processor.settings.requestHeadersTimeout)) {
            let (handler, context) = loopBound.value
            handler.headTimer = nil
            // No complete head since the timer started: 408 and close, or, behind a request in
            // flight, close after its answer.
            guard !handler.closing, handler.heads == headsBefore else { return }
            handler.processor.metrics.connectionClosed(.requestHeadersTimeout)
            if handler.inFlight == nil {
                handler.closeWithBareAnswer(status: 408, context: context)
            } else {
                handler.closeAfterAnswer = true
            }
        }
    }
}

import LambdaPayload
import NIOCore
import NIOHTTP1

/// An HTTP/1.x connection (docs/ARCHITECTURE.md, HTTP/1.x and HTTP/2): keep-alive, requests answered in order, each
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
///
/// What happens when is decided by `HTTP1ConnectionStateMachine`; this handler only feeds it the
/// channel's events and carries out its actions (writes, timers, the Lambda call, metrics).
final class HTTP1ConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: all state is touched on the channel's event loop only; the processing task hops back.
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    typealias Action = HTTP1ConnectionStateMachine.Action
    typealias Process = RequestProcessor.Process

    private let processor: RequestProcessor
    private let connection: ClientConnection
    private let output: ConnectionOutput
    private let process: Process
    private var machine: HTTP1ConnectionStateMachine
    private var parser = HTTP1RequestParser()
    /// Bytes read and not yet parsed: the start of a head (or of a chunk's size line).
    private var unparsed = UnparsedBytes()
    /// `channelInactive` came: parts still parsed from a read in progress go nowhere.
    private var inactive = false
    private var headTimer: Scheduled<Void>?
    /// When the head being awaited started to be (the head timer's start; nil once a head came):
    /// the start of a request that never got a complete head.
    private var headAwaitedSince: NIODeadline?
    private let bodyTimer: QuietTimer
    /// `takeUpPipelined` is under way (further down this call stack).
    private var takingUpPipelined = false
    /// The requests read and not yet answered, oldest first (pipelined ones behind the first): when
    /// each started and how much body it had, for `/metrics` and the access log.
    private var exchanges = CircularBuffer<RequestExchange>(initialCapacity: 2)
    /// What the next answer written means (an answer the machine gives itself, or the processor's).
    private var nextAnswer: RequestProcessor.Answer?
    /// The streamed answer being relayed, after its head.
    private var relay: StreamRelay?
    /// The stream of the answer that is ready to be written (between `answerReady` and its head).
    private var nextStream: ResponseStream?
    /// The request being processed, cancelled if the client goes away before its answer.
    private var inFlight: RequestCancellation?

    /// A streamed answer on its way: what it is, and what was written of it.
    private struct StreamRelay {
        var stream: ResponseStream
        var answer: RequestProcessor.Answer
        var exchange: RequestExchange
        var chunked: Bool
        var bodyBytes = 0
        /// Every write so far reached the socket.
        var written = true
        var failure: ResponseStream.StreamFailure?
    }

    convenience init(processor: RequestProcessor, connection: ClientConnection, output: ConnectionOutput, limit: Int) {
        self.init(processor: processor, connection: connection, output: output, limit: limit) { request, eventLoop, cancellation, completion in
            processor.process(request, connection: connection, budget: output.budget, answeringOn: eventLoop, cancellation: cancellation, completion: completion)
        }
    }

    /// `process`: the processor's Lambda call, unless a test answers requests itself.
    init(processor: RequestProcessor, connection: ClientConnection, output: ConnectionOutput, limit: Int, process: @escaping Process) {
        self.processor = processor
        self.connection = connection
        self.output = output
        self.process = process
        self.machine = HTTP1ConnectionStateMachine(
            limit: limit,
            admit: { RequestReader.refusal(by: processor, of: $0, fields: $1, on: connection) },
            budgetIsSpent: { output.budget.isSpent }
        )
        self.bodyTimer = QuietTimer(timeout: TimeAmount(processor.settings.clientBodyTimeout))
    }

    // MARK: Events, fed to the state machine

    func handlerAdded(context: ChannelHandlerContext) {
        output.confirmsAnswersByDrain()
        run(machine.handlerAdded(), context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelReadTimers()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if parser.hasFailed {
            // Bytes after a request that could not be parsed (its 400 may wait behind an answer the
            // client does not read): the connection closes now, as NIO's decoder had it.
            run(machine.errorCaught(ChannelError.inputClosed), context: context)
            return
        }
        var buffer = unparsed.joined(with: unwrapInboundIn(data))
        do {
            while !inactive, let part = try parser.next(&buffer) {
                received(part, context: context)
            }
        } catch {
            // 431 for a head over the limits, 400 for anything else; the connection closes.
            run(machine.errorCaught(error.isTooLarge ? HTTPParserError.headerOverflow : HTTPParserError.invalidCharactersUsed), context: context)
            return
        }
        if !inactive { unparsed.keep(buffer) }
    }

    /// The storage the unparsed bytes hold, for tests: at most their own size, never what was
    /// parsed before them.
    var unparsedCapacity: Int { unparsed.capacity }

    private func received(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head): exchanges.append(RequestExchange(head: head))
        case .body(let body): if !exchanges.isEmpty { exchanges[exchanges.index(before: exchanges.endIndex)].requestBodyBytes += body.readableBytes }
        case .end: break
        }
        run(machine.channelRead(part), context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        run(machine.channelReadComplete(), context: context)
    }

    func read(context: ChannelHandlerContext) {
        run(machine.readRequested(), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is IdleStateHandler.IdleStateEvent:
            run(machine.idleTimeout(), context: context)
        case is ChannelShouldQuiesceEvent:
            run(machine.quiesce(), context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inactive = true
        // Answers the socket never took are unsent, counted now as a failed write's were.
        output.connectionEnded()
        if parser.isInsideBody || unparsed.bytes.readableBytes > 0 {
            // The client closed in the middle of a request: a request that cannot be parsed.
            run(machine.errorCaught(HTTPParserError.invalidEOFState), context: context)
        }
        unparsed.clear()
        // The client is gone before the answer: whatever waits on Lambda for it stops.
        inFlight?.cancel()
        inFlight = nil
        if let relay {
            // The client went away mid-stream: the call is cancelled, and the request counted.
            self.relay = nil
            relay.stream.abandon()
            endStream(relay, written: false)
        }
        run(machine.channelInactive(), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        run(machine.errorCaught(error), context: context)
    }

    // MARK: Actions

    private func run(_ actions: HTTP1ConnectionStateMachine.Actions, context: ChannelHandlerContext) {
        actions.forEach { action in
            switch action {
            case .read:
                context.read()
            case .armHeadTimer:
                armHeadTimer(context: context)
            case .cancelHeadTimer:
                headTimer?.cancel()
                headTimer = nil
                headAwaitedSince = nil
            case .touchBodyTimer:
                touchBodyTimer(context: context)
            case .cancelReadTimers:
                cancelReadTimers()
            case .writeContinue(let version):
                var buffer = context.channel.allocator.buffer(capacity: 32)
                HTTP1ResponseEncoder.writeContinue(version: version, into: &buffer)
                context.write(wrapOutboundOut(buffer), promise: nil)
                output.flushMarking(context)
            case .startProcessing(let request):
                start(request, context: context)
            case .waitForBudget:
                waitForBudget(context: context)
            case .writeAnswer(let response, let head, let close, let heldBytes):
                write(response, for: head, close: close, handingOver: heldBytes, context: context)
            case .writeStreamHead(let response, let head, let close):
                writeStreamHead(response, for: head, close: close, context: context)
            case .writeStreamEnd(let close):
                writeStreamEnd(close: close, context: context)
            case .abortStream:
                abortStream(context: context)
            case .releaseHeldBytes(let bytes):
                output.budget.release(bytes)
            case .writeBareStatusAndClose(let status):
                var buffer = context.channel.allocator.buffer(capacity: 64)
                HTTP1ResponseEncoder.writeBare(status: status, into: &buffer)
                let written = writeAndFlush(buffer, context: context)
                // Counted before the close is under way: the client sees the end of the connection
                // only after the request is on /metrics.
                endBare(status: status, written: written)
                written.whenComplete { _ in context.close(promise: nil) }
            case .close:
                // An answer written in this round waits for the round's end to be flushed: it goes
                // out before the close, as it would have without the wait.
                output.flushMarking(context)
                context.close(promise: nil)
            case .countAnswer(let answer):
                nextAnswer = answer
            case .countClosure(let reason):
                processor.metrics.connectionClosed(reason)
            }
        }
    }

    private func start(_ request: GatewayRequest, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let cancellation = RequestCancellation()
        inFlight = cancellation
        process(request, context.eventLoop, cancellation) { processed in
            let (handler, context) = loopBound.value
            if handler.inFlight === cancellation { handler.inFlight = nil }
            handler.nextAnswer = processed.answer
            handler.nextStream = processed.stream
            handler.run(handler.machine.answerReady(processed.response, heldBytes: processed.heldBytes, streamed: processed.stream != nil), context: context)
            if let stream = handler.nextStream {
                // Not relayed (the connection closed while the function ran).
                handler.nextStream = nil
                stream.abandon()
            }
            if let unwritten = handler.nextAnswer.take() {
                // The connection closed while the function ran (the client went away, a timeout):
                // nothing is written, but the request happened and is counted and logged (`DC`).
                let exchange = handler.exchanges.popFirst() ?? RequestExchange()
                handler.processor.ended(exchange, answer: unwritten, responseBodyBytes: 0, written: false, connection: handler.connection)
            }
            handler.takeUpPipelined(context: context)
        }
    }

    /// Pipelined requests, in order, until one is in flight again. One part at a time: a write that
    /// fails closes the connection at once, and the machine then starts no more. A request answered
    /// at once (a refusal, an early failure) completes inside `start`, from within this loop: the
    /// loop then goes on with the next part, rather than a new loop one call deeper per request.
    private func takeUpPipelined(context: ChannelHandlerContext) {
        guard !takingUpPipelined else { return }
        takingUpPipelined = true
        defer { takingUpPipelined = false }
        while let actions = machine.takeUpPipelined() {
            run(actions, context: context)
        }
    }

    private func waitForBudget(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        output.budget.whenAvailable { available in
            // Not available: the connection closed meanwhile.
            guard available else { return }
            eventLoop.execute {
                let (handler, context) = loopBound.value
                handler.run(handler.machine.budgetAvailable(), context: context)
            }
        }
    }

    private func write(_ response: LambdaHTTPResponse, for head: HTTPRequestHead, close: Bool, handingOver held: Int, context: ChannelHandlerContext) {
        let (bytes, largeBody) = HTTP1ResponseEncoder.encode(response, version: head.version, bodyless: head.method == .HEAD, close: close, allocator: context.channel.allocator)
        let size = bytes.readableBytes + (largeBody?.readableBytes ?? 0)
        context.write(wrapOutboundOut(bytes), promise: nil)
        if let largeBody { context.write(wrapOutboundOut(largeBody), promise: nil) }
        // Taken out (`take`), not copied then cleared: an answer holds a dozen references.
        let answer = nextAnswer.take() ?? RequestProcessor.Answer(response: response, outcome: .rejected, details: ResponseCodeDetails.rejected("Unknown"))
        var exchange = exchanges.popFirst() ?? RequestExchange(head: head)
        exchange.responded = .now()
        let bodyBytes = head.method == .HEAD ? 0 : response.body.readableBytes
        // Confirmed once the socket took it (`ConnectionOutput.confirmsAnswersByDrain`), before the
        // flush that may do so at once. Counted before the close: the client sees the connection
        // end only after the request is on /metrics.
        output.writingUnconfirmed(size, handingOver: held) { [self] written in
            processor.ended(exchange, answer: answer, responseBodyBytes: bodyBytes, written: written, connection: connection)
            if close { context.close(promise: nil) }
        }
        output.flush(context)
    }

    /// A flush from the pipeline's tail (the end of the loop's round, `FlushBatch`) marks the
    /// answers it sends, and confirms them if the socket took them all.
    func flush(context: ChannelHandlerContext) {
        output.flushMarking(context)
    }

    /// Writes with a promise and flushes at once, marking the answers the flush sends: every flush
    /// of the connection does (`ConnectionOutput.flushMarking`), so none sends an answer that a
    /// later drain would not confirm.
    private func writeAndFlush(_ bytes: ByteBuffer, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let written = context.write(wrapOutboundOut(bytes))
        output.flushMarking(context)
        return written
    }

    // MARK: Streamed answers

    private func writeStreamHead(_ response: LambdaHTTPResponse, for head: HTTPRequestHead, close: Bool, context: ChannelHandlerContext) {
        guard let stream = nextStream else { return }
        nextStream = nil
        let (bytes, _) = HTTP1ResponseEncoder.encode(response, version: head.version, bodyless: true, close: close, streamed: true, allocator: context.channel.allocator)
        let written = writeAndFlush(bytes, context: context)
        output.writing(bytes.readableBytes, done: written)
        var exchange = exchanges.popFirst() ?? RequestExchange(head: head)
        exchange.responded = .now()
        let answer = nextAnswer.take() ?? RequestProcessor.Answer(response: response, outcome: .invoked, details: ResponseCodeDetails.viaUpstream)
        relay = StreamRelay(stream: stream, answer: answer, exchange: exchange, chunked: head.version != .http1_0)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        stream.attach { part in
            let (handler, context) = loopBound.value
            handler.relayPart(part, context: context)
        }
    }

    private func relayPart(_ part: ResponseStream.Part, context: ChannelHandlerContext) {
        guard relay != nil else {
            if case .body(_, let held) = part, held > 0 { output.budget.release(held) }
            return
        }
        switch part {
        case .body(let piece, let held):
            guard let bytes = HTTP1ResponseEncoder.streamPiece(piece, chunked: relay!.chunked, allocator: context.channel.allocator) else {
                if held > 0 { output.budget.release(held) }
                return
            }
            relay!.bodyBytes += piece.readableBytes
            let written = writeAndFlush(bytes, context: context)
            output.writing(bytes.readableBytes, done: written, handingOver: held) { [self] ok in
                if !ok { relay?.written = false }
            }
        case .end(let failure):
            relay!.failure = failure
            run(machine.streamEnded(complete: failure == nil), context: context)
            takeUpPipelined(context: context)
        }
    }

    private func writeStreamEnd(close: Bool, context: ChannelHandlerContext) {
        guard let relay else { return }
        self.relay = nil
        var bytes = context.channel.allocator.buffer(capacity: 8)
        if relay.chunked { HTTP1ResponseEncoder.writeLastChunk(into: &bytes) }
        let written = writeAndFlush(bytes, context: context)
        output.writing(bytes.readableBytes, done: written) { [self] ok in
            var relay = relay
            relay.exchange.responded = relay.exchange.responded ?? .now()
            endStream(relay, written: ok && relay.written)
        }
        if close {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Closes the connection without the stream's end: the client sees an incomplete response. A
    /// chunked body lacks its last chunk; a body that ends with the connection (HTTP/1.0) ends with
    /// a reset instead of a FIN, which is how a client tells truncation from the end.
    private func abortStream(context: ChannelHandlerContext) {
        guard let relay else { return }
        self.relay = nil
        endStream(relay, written: relay.written)
        if relay.chunked {
            context.close(promise: nil)
        } else {
            output.reset()
        }
    }

    /// The request of a streamed answer is over: counted and logged.
    private func endStream(_ relay: StreamRelay, written: Bool) {
        var answer = processor.streamEnded(relay.answer, stream: relay.stream, failure: relay.failure, service: connection.serviceName)
        // The client went away first (Envoy's `DC`, which `ended` adds): the stream did not complete.
        if !written { answer.streamed = .incomplete }
        processor.ended(relay.exchange, answer: answer, responseBodyBytes: relay.bodyBytes, written: written, connection: connection)
    }

    /// A status without a body, and the connection closes: the answer the machine noted (a body
    /// that stopped arriving), or a request that could not be parsed. A head timeout with nothing
    /// received is no request, and is counted only as a closed connection.
    private func endBare(status: Int, written: EventLoopFuture<Void>) {
        let answer: RequestProcessor.Answer
        if let noted = nextAnswer.take() {
            answer = noted
        } else if status == 400 || status == 431 {
            answer = RequestProcessor.Answer(
                response: LambdaHTTPResponse(status: status), outcome: .rejected,
                details: status == 431 ? ResponseCodeDetails.headersTooLarge : ResponseCodeDetails.codecError
            )
        } else {
            return
        }
        // No exchange: bytes that never became a head (a timeout, a parse error), timed from when
        // that head was first awaited.
        var exchange = exchanges.popFirst() ?? RequestExchange(started: headAwaitedSince ?? .now())
        exchange.responded = .now()
        written.assumeIsolated().whenComplete { [self] result in
            processor.ended(exchange, answer: answer, responseBodyBytes: 0, written: (try? result.get()) != nil, connection: connection)
        }
    }

    // MARK: Read timers

    private func armHeadTimer(context: ChannelHandlerContext) {
        headTimer?.cancel()
        headAwaitedSince = .now()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        headTimer = context.eventLoop.scheduleTask(in: TimeAmount(processor.settings.requestHeadersTimeout)) {
            let (handler, context) = loopBound.value
            handler.headTimer = nil
            handler.run(handler.machine.headTimerFired(), context: context)
        }
    }

    private func touchBodyTimer(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        bodyTimer.touch(on: context.eventLoop) {
            let (handler, context) = loopBound.value
            handler.run(handler.machine.bodyTimerFired(), context: context)
        }
    }

    private func cancelReadTimers() {
        headTimer?.cancel()
        headTimer = nil
        bodyTimer.cancel()
    }
}

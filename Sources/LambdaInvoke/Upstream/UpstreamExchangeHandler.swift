import LambdaPayload
import NIOCore
import NIOHTTP1
import NIOTLS

/// The handler of a pooled upstream connection, behind TLS: it takes one `UpstreamExchange` at a
/// time, writes its request (bytes encoded when it was made) in one flush, reads the answer with
/// its own parser (`UpstreamResponseParser`) and calls the exchange's completion. One handler
/// where there were three (a request encoder, NIO's response decoder, this one): each read, write
/// and flush of an Invoke call passes fewer pipeline steps.
///
/// Anything that leaves the exchange unfinished (deadline, an answer over the limit, a malformed
/// answer, bytes when nothing was asked) closes the connection: its state is unknown after that.
final class UpstreamExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = UpstreamExchange
    typealias OutboundOut = ByteBuffer

    /// An answer being read.
    struct Receiving {
        var status: Int
        var headers: UpstreamHeaders
        var keepAlive: Bool
        /// The body's length when a `Content-Length` frames it.
        var contentLength: Int?
        var body: ByteBuffer?
        /// The body goes to the exchange's stream sink, piece by piece.
        var streaming = false
    }

    /// The exchange on the connection and its answer once the head has come: one object that the
    /// states refer to, so that a change of state, or reading it, copies one reference rather than
    /// the exchange's and the answer's several.
    final class InFlight {
        let exchange: UpstreamExchange
        /// Set as the head arrives, when the state becomes `receiving`.
        var answer: Receiving?

        init(_ exchange: UpstreamExchange) {
            self.exchange = exchange
        }
    }

    enum State {
        /// Between exchanges.
        case idle
        /// The request is written (or being written); nothing of the answer has arrived.
        case awaitingHead(InFlight)
        /// The head has arrived (`InFlight.answer`); the body is coming.
        case receiving(InFlight)
        case closed
    }

    private var state: State = .idle
    private var parser = UpstreamResponseParser()
    /// Bytes read and not yet parsed: the start of a head (or of a chunk's size line) that is not
    /// whole yet.
    private var unparsed = UnparsedBytes()
    /// How far the exchange's request got, without a write promise (`flush`).
    enum RequestProgress {
        /// Not flushed yet: a connection lost now lost a request the endpoint never saw.
        case unsent
        /// Flushed, and some of its bytes still wait for the socket: the endpoint cannot have
        /// run an incomplete request, so a lost connection still means unwritten.
        case flushed
        /// The socket took all of it: from then on the function may have run, and a lost
        /// connection is never retried.
        case written
    }

    private var request = RequestProgress.unsent
    /// Answer bytes taken from the exchange's `ResponseBudget`, given back when it ends.
    private var reserved = 0
    /// Counts exchanges, so that a budget's late answer for one that ended is recognised.
    private(set) var exchangeNumber = 0
    /// The answer does not fit the client connection's budget yet: reading waits.
    private var waitingForBudget = false
    /// A `read()` held back while waiting for the budget.
    private var readHeld = false
    /// The connection's one deadline timer (`armDeadline`), when it runs: when it fires, and which
    /// arming it is (a cancelled timer can still fire, in the round of its cancel).
    private var deadlineTimer: (callback: NIOScheduledCallback, at: NIODeadline, generation: Int)?
    private var timerGenerations = 0
    /// The error that brought the connection down, reported with the exchange it ends.
    private var lastError: (any Error)?
    /// Completed when the connection can take a request: connected, and for TLS, handshaken
    /// (so that a certificate the client refuses is a connect failure, not a lost request).
    private var readiness: EventLoopPromise<Void>?
    private let waitsForTLS: Bool
    /// The connection's own address, written once when it connects and handed out with each answer.
    private var localAddress: String?
    /// Where a request is flushed with the other writes of its event loop's round; nil: at once.
    private let flushes: FlushBatch?
    /// This handler's place in the pipeline while it is in one, for `start`.
    private var context: ChannelHandlerContext?

    init(readiness: EventLoopPromise<Void>, waitsForTLS: Bool, flushes: FlushBatch? = nil) {
        self.readiness = readiness
        self.waitsForTLS = waitsForTLS
        self.flushes = flushes
    }

    func channelActive(context: ChannelHandlerContext) {
        localAddress = context.channel.localAddress?.envoyText
        if !waitsForTLS { becomeReady(.success(())) }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { becomeReady(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Writable exactly when no byte waits for the socket (`flush`). Only a closed channel
        // refuses the option, and nothing is written on one.
        try? context.channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: 1, high: 1))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        stopDeadlineTimer()
        becomeReady(.failure(lastError ?? ChannelError.ioOnClosedChannel))
    }

    private func becomeReady(_ result: Result<Void, any Error>) {
        guard let readiness else { return }
        self.readiness = nil
        readiness.completeWith(result)
    }

    /// Takes `exchange` over, on the connection's event loop: the pool hands it here directly, not
    /// through the pipeline (this is its last handler), so there is no write promise to catch an
    /// exchange that never arrives. A connection closed by now ends the exchange at once.
    func start(_ exchange: UpstreamExchange) {
        guard let context else {
            exchange.completion(.failure(.closedBeforeResponse(cause: lastError ?? ChannelError.ioOnClosedChannel, requestWritten: false)))
            return
        }
        start(exchange, context: context)
    }

    /// An exchange written into the channel (as the tests do) is taken over the same way.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        promise?.succeed()
        start(unwrapOutboundIn(data), context: context)
    }

    private func start(_ exchange: UpstreamExchange, context: ChannelHandlerContext) {
        switch state {
        case .idle:
            break
        case .closed:
            exchange.completion(.failure(.closedBeforeResponse(cause: lastError, requestWritten: false)))
            return
        case .awaitingHead, .receiving:
            exchange.completion(.failure(.malformedResponse("a second request on a busy connection")))
            return
        }
        do {
            try armDeadline(exchange.deadline, context: context)
        } catch {
            // The event loop is shutting down.
            exchange.completion(.failure(.shutDown))
            return
        }
        exchangeNumber &+= 1
        let number = exchangeNumber
        state = .awaitingHead(InFlight(exchange))
        request = .unsent
        parser.answersHEAD = exchange.request.isHEAD
        exchange.stream?.attached(cancel(exchange: number, context: context))
        context.write(wrapOutboundOut(exchange.request.bytes), promise: nil)
        if let largeBody = exchange.request.largeBody {
            context.write(wrapOutboundOut(largeBody), promise: nil)
        }
        if let flushes {
            flushes.flush(context.channel)
        } else {
            flush(context: context)
        }
    }

    /// Sends the request, and learns whether the socket took it without a write promise (each
    /// one cost a future here, and TLS's own future, array and closure to pass it on).
    ///
    /// NIO closes a channel whose socket refuses a write within the flush that made it, so a
    /// connection lost before the flush came back lost an unwritten request. With both water
    /// marks at one byte (`handlerAdded`), the channel is writable exactly when no byte waits for
    /// the socket: writable after the flush, the request is written; otherwise it is when the
    /// channel becomes writable (`channelWritabilityChanged`), and a connection lost before that
    /// lost an incomplete request, which the endpoint cannot have run. A flush comes through here
    /// both when the handler makes it and at the end of the loop's round (`FlushBatch` flushes
    /// from the pipeline's tail).
    func flush(context: ChannelHandlerContext) {
        if case .awaitingHead = state, case .unsent = request { request = .flushed }
        context.flush()
        requestMayBeWritten(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        requestMayBeWritten(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// A flushed request of which no byte waits any more is written.
    private func requestMayBeWritten(context: ChannelHandlerContext) {
        if case .awaitingHead = state, case .flushed = request, context.channel.isWritable, context.channel.isActive {
            request = .written
        }
    }

    /// Abandons exchange `number` if the connection still carries it: the cancel may come late, from
    /// another loop, and must never end a call the pooled connection carries by then.
    private func cancel(exchange number: Int, context: ChannelHandlerContext) -> @Sendable () -> Void {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        return {
            eventLoop.execute {
                let (handler, context) = loopBound.value
                guard handler.exchangeNumber == number else { return }
                switch handler.state {
                case .awaitingHead, .receiving: handler.fail(context: context, with: .abandoned)
                case .idle, .closed: break
                }
            }
        }
    }

    /// Reading waits while the answer in progress does not fit its client's budget.
    func read(context: ChannelHandlerContext) {
        if waitingForBudget {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// Takes the answer's size from the exchange's budget, or waits for it.
    private func reserve(_ bytes: Int, from budget: ResponseBudget, context: ChannelHandlerContext) {
        let number = exchangeNumber
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let taken = budget.reserve(bytes) { granted in
            eventLoop.execute {
                let (handler, context) = loopBound.value
                handler.budgetAnswered(granted, bytes: bytes, budget: budget, exchange: number, context: context)
            }
        }
        if taken {
            reserved += bytes
        } else {
            waitingForBudget = true
        }
    }

    private func budgetAnswered(_ granted: Bool, bytes: Int, budget: ResponseBudget, exchange number: Int, context: ChannelHandlerContext) {
        guard number == exchangeNumber, waitingForBudget else {
            // The exchange ended while it waited: the bytes were taken for nobody.
            if granted { budget.release(bytes) }
            return
        }
        waitingForBudget = false
        guard granted else {
            fail(context: context, with: .abandoned)
            return
        }
        reserved += bytes
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    /// The exchange is over: its budget bytes go back (`handedOver`: they stay taken, now held by
    /// the answer, so that there is no moment between Lambda's side and the client's where the
    /// answer is in memory and not counted), and reading goes on.
    private func endBudget(of exchange: UpstreamExchange, context: ChannelHandlerContext, handedOver: Bool = false) {
        if reserved > 0 && !handedOver { exchange.budget?.release(reserved) }
        reserved = 0
        exchangeNumber &+= 1
        if waitingForBudget {
            waitingForBudget = false
        }
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .closed = state { return }
        var buffer = unparsed.joined(with: unwrapInboundIn(data))
        parse(&buffer, context: context)
        if case .closed = state { return }
        unparsed.keep(buffer)
    }

    /// Hands every whole event in `buffer` on, consuming its bytes.
    private func parse(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        while true {
            switch state {
            case .closed:
                return
            case .idle:
                if buffer.readableBytes > 0 { fail(context: context, with: .malformedResponse("bytes from the endpoint when nothing was asked")) }
                return
            case .awaitingHead, .receiving:
                break
            }
            let event: UpstreamResponseParser.Event?
            do {
                event = try parser.next(&buffer)
            } catch {
                fail(context: context, with: .malformedResponse(error.description))
                return
            }
            guard let event else { return }
            if case .end = event, buffer.readableBytes > 0 {
                // Bytes behind a whole answer, when nothing else was asked (the pool never
                // pipelines): the answer stands, but the connection is not used again, so that
                // they cannot be read as the next exchange's answer (which the completion may
                // start on this very connection, before this loop goes on).
                received(.end, context: context, reusable: false)
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                return
            }
            received(event, context: context)
        }
    }

    private func received(_ event: UpstreamResponseParser.Event, context: ChannelHandlerContext, reusable: Bool = true) {
        switch (event, state) {
        // `inFlight.exchange` is read where it is used: a local copy of the exchange retained each
        // of its references, three times per answer.
        case (.head(let head), .awaitingHead(let inFlight)):
            if head.status == 200, let sink = inFlight.exchange.stream {
                inFlight.answer = Receiving(status: 200, headers: head.headers, keepAlive: head.keepAlive, contentLength: head.contentLength, body: nil, streaming: true)
                state = .receiving(inFlight)
                sink.head(head.headers.httpHeaders, localAddress, sink.attempts, cancel(exchange: exchangeNumber, context: context))
                return
            }
            let limit = inFlight.exchange.maximumResponseBytes
            if let length = head.contentLength, length > limit {
                fail(context: context, with: .responseTooLarge(limit: limit))
                return
            }
            inFlight.answer = Receiving(status: head.status, headers: head.headers, keepAlive: head.keepAlive, contentLength: head.contentLength, body: nil)
            state = .receiving(inFlight)
            // Lambda frames its answers by length: the whole answer is reserved before its body is
            // read, so it either fits now or stays in the socket until it does.
            if let budget = inFlight.exchange.budget, let length = head.contentLength, length > 0 {
                reserve(length, from: budget, context: context)
            }

        case (.body(var chunk), .receiving(let inFlight)):
            if inFlight.answer!.streaming {
                // Handed over to the sink with the bytes it holds; reading pauses while the client's
                // budget is spent, so a caller that reads slowly slows reading from Lambda.
                if let budget = inFlight.exchange.budget {
                    budget.take(chunk.readableBytes)
                    if budget.isSpent && !waitingForBudget { reserve(0, from: budget, context: context) }
                }
                inFlight.exchange.stream?.body(chunk)
                return
            }
            let limit = inFlight.exchange.maximumResponseBytes
            guard (inFlight.answer!.body?.readableBytes ?? 0) + chunk.readableBytes <= limit else {
                fail(context: context, with: .responseTooLarge(limit: limit))
                return
            }
            let length = inFlight.answer!.contentLength
            if let budget = inFlight.exchange.budget, length == nil {
                // Chunked (not what Lambda sends): count what arrives, and read on only when the
                // budget is not spent.
                budget.take(chunk.readableBytes)
                reserved += chunk.readableBytes
                if budget.isSpent && !waitingForBudget { reserve(0, from: budget, context: context) }
            }
            if inFlight.answer!.body == nil {
                if let length, length > chunk.readableBytes {
                    // The first piece of a longer answer: room for all of it at once, rather than
                    // a buffer that grows (and is copied) as the pieces come.
                    var body = context.channel.allocator.buffer(capacity: length)
                    body.writeBuffer(&chunk)
                    inFlight.answer!.body = body
                } else {
                    // The whole answer in one read: a slice of it, not a copy.
                    inFlight.answer!.body = chunk
                }
            } else {
                // In place: the answer is held only here, so appending does not copy the buffer.
                inFlight.answer!.body!.writeBuffer(&chunk)
            }

        case (.end, .receiving(let inFlight)):
            // The deadline timer is left running (`armDeadline`).
            let answer = inFlight.answer!
            let held = inFlight.exchange.budget == nil ? 0 : reserved
            endBudget(of: inFlight.exchange, context: context, handedOver: true)
            state = .idle
            let response = UpstreamResponse(
                status: answer.status, headers: answer.headers, body: answer.body ?? ByteBuffer(), keepAlive: answer.keepAlive && reusable,
                heldBytes: held, localAddress: localAddress, streamed: answer.streaming
            )
            if !answer.keepAlive || !reusable {
                state = .closed
                context.close(promise: nil)
            }
            inFlight.exchange.completion(.success(response))

        case (_, .closed):
            return
        case (let event, _):
            // The parser reads one answer per exchange; this would be a bug of its own.
            fail(context: context, with: .malformedResponse("unexpected \(Self.name(of: event)) from the endpoint"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if lastError == nil { lastError = error }
        becomeReady(.failure(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopDeadlineTimer()
        becomeReady(.failure(lastError ?? ChannelError.eof))
        if case .receiving = state, lastError == nil {
            // An answer framed by the connection's end is whole now (unless TLS ended uncleanly:
            // then `lastError` is set and it may have been cut short).
            if case .end? = try? parser.inputEnded(unparsed.bytes) {
                received(.end, context: context)
            }
        }
        unparsed.clear()
        switch state {
        case .awaitingHead:
            fail(context: context, with: .closedBeforeResponse(cause: lastError, requestWritten: request == .written))
        case .receiving:
            fail(context: context, with: .closedMidResponse(cause: lastError))
        case .idle, .closed:
            state = .closed
        }
        context.fireChannelInactive()
    }

    /// Ends the exchange in flight, if any, with `failure`, and closes the connection.
    fileprivate func fail(context: ChannelHandlerContext, with failure: UpstreamFailure) {
        let previous = state
        state = .closed
        stopDeadlineTimer()
        switch previous {
        case .awaitingHead(let inFlight), .receiving(let inFlight):
            endBudget(of: inFlight.exchange, context: context)
            inFlight.exchange.completion(.failure(failure))
        case .idle, .closed:
            break
        }
        context.close(promise: nil)
    }

    private static func name(of event: UpstreamResponseParser.Event) -> String {
        switch event {
        case .head: "response head"
        case .body: "body bytes"
        case .end: "end of response"
        }
    }
}

extension SocketAddress {
    /// `ip:port`, `[ip]:port` for IPv6, as Envoy writes an address in its access log; nil for an
    /// address without an IP and port (a Unix socket).
    public var envoyText: String? {
        guard let ip = ipAddress, let port else { return nil }
        if case .v6 = self { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }
}

extension UpstreamExchangeHandler {
    /// Makes the connection's deadline timer fire by `deadline`, the deadline of the exchange
    /// that starts. One timer serves the connection's exchanges in turn: an exchange that ends
    /// leaves it running, and the next moves it only when its own deadline comes sooner. When it
    /// fires (`deadlineTimerFired`) it ends the exchange in flight if that one's deadline has
    /// passed, moves on to that deadline if not, and stops between exchanges.
    ///
    /// Per exchange that is a comparison, where a timer of its own cost a scheduling and a
    /// cancel, the cancel a scan of the event loop's whole queue of timers (NIO finds a callback
    /// by its ID), longer the more connections the loop holds.
    fileprivate func armDeadline(_ deadline: NIODeadline, context: ChannelHandlerContext) throws {
        if let timer = deadlineTimer {
            if timer.at <= deadline { return }
            timer.callback.cancel()
            // Forgotten at once: were the new one refused (the loop shutting down), a later
            // exchange must not take the cancelled one for its own.
            deadlineTimer = nil
        }
        timerGenerations &+= 1
        let callback = try context.eventLoop.assumeIsolated().scheduleCallback(
            at: deadline, handler: DeadlineTimer(handler: self, context: context, generation: timerGenerations))
        deadlineTimer = (callback, deadline, timerGenerations)
    }

    /// The connection closes: its timer goes (it holds the handler and its context until it fires).
    fileprivate func stopDeadlineTimer() {
        deadlineTimer?.callback.cancel()
        deadlineTimer = nil
    }

    /// The timer armed as `generation` fired. A cancelled one can still fire, in the round of its
    /// cancel (NIO takes the round's expired timers out of its queue before it runs them): it then
    /// finds another generation, or none, and does nothing.
    /// Internal for tests, which call a late firing by hand.
    func deadlineTimerFired(generation: Int, context: ChannelHandlerContext) {
        guard let timer = deadlineTimer, timer.generation == generation else { return }
        deadlineTimer = nil
        let deadline: NIODeadline
        switch state {
        case .awaitingHead(let inFlight), .receiving(let inFlight): deadline = inFlight.exchange.deadline
        case .idle, .closed: return
        }
        if context.eventLoop.now >= deadline {
            fail(context: context, with: .timedOut)
            return
        }
        do {
            try armDeadline(deadline, context: context)
        } catch {
            fail(context: context, with: .shutDown)
        }
    }

    /// The timer armed as `generation` calls back: a callback with no promise or future
    /// (`NIOScheduledCallback`).
    struct DeadlineTimer: NIOScheduledCallbackHandler {
        let handler: UpstreamExchangeHandler
        let context: ChannelHandlerContext
        let generation: Int

        func handleScheduledCallback(eventLoop: some EventLoop) {
            handler.deadlineTimerFired(generation: generation, context: context)
        }
    }

    /// The generation of the running deadline timer, for tests.
    var deadlineTimerGeneration: Int? { deadlineTimer?.generation }
}

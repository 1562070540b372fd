import LambdaPayload
import NIOCore
import NIOHTTP1

/// What an HTTP/1.x server connection does (docs/ARCHITECTURE.md, HTTP/1.x and HTTP/2), without doing it:
/// `HTTP1ConnectionHandler` feeds it the channel's events and carries out the actions it returns.
///
/// Requests are read one at a time (`RequestReader`) and answered in order. While one is answered,
/// what the client pipelines behind it waits here, and the channel's reads are held only while
/// something waits. The read timers are asked for only while a read is incomplete: the head timer
/// while bytes of a head sit in the parser (or a new connection has sent nothing), the body timer
/// while a body is arriving.
struct HTTP1ConnectionStateMachine {
    fileprivate enum State {
        /// Between requests. Bytes of the next head may be in the parser: the head timer runs then.
        case idle
        /// A head was taken and its body is arriving. `closeAfterAnswer`: draining.
        case readingBody(closeAfterAnswer: Bool)
        /// A complete request waits until the client has read enough of the earlier answers.
        case waitingForBudget(InFlight, GatewayRequest)
        /// A request is being answered; parts that arrive meanwhile wait in `pipelined`.
        case processing(InFlight)
        /// A streamed answer's head is written and its body is being relayed; parts that arrive
        /// meanwhile wait in `pipelined`. `close`: the head said `connection: close`.
        case streaming(InFlight, close: Bool)
        /// Nothing more is read or started; an answer still to come is dropped.
        case closing
        /// The channel is inactive.
        case closed
    }

    fileprivate struct InFlight {
        var head: HTTPRequestHead
        /// The request ends its connection (`HeadFields.endsConnection`), the connection drains,
        /// or a head timed out behind this request: its answer is the connection's last.
        var closeAfterAnswer: Bool
    }

    fileprivate enum HeadTimer {
        case off
        /// `headArrived`: a head came since it was armed (one pipelined behind a request in flight,
        /// or one on a closing connection), so its firing does nothing. `bytesArrived`: bytes of a
        /// head came (a read delivered no part), so its 408 answers a request, which is counted
        /// and logged; a connection that sent nothing at all just gets its 408 and is closed.
        case armed(headArrived: Bool, bytesArrived: Bool)
    }

    enum Action {
        /// Pass the channel's read on.
        case read
        /// Start the head timer; it calls `headTimerFired`.
        case armHeadTimer
        case cancelHeadTimer
        /// Something of a body arrived: the body timer (re)starts; it calls `bodyTimerFired`.
        case touchBodyTimer
        /// Stop both read timers.
        case cancelReadTimers
        /// `100 Continue`, the go-ahead for a body.
        case writeContinue(HTTPVersion)
        /// Process the request; its answer comes back as `answerReady`.
        case startProcessing(GatewayRequest)
        /// The connection's answers wait unread: call `budgetAvailable` once there is room.
        case waitForBudget
        /// Write the answer to the request of `head` (no body for HEAD); with `close`, as
        /// `connection: close`, and close once written. `heldBytes`: the budget bytes the Lambda
        /// answer held, handed over to the answer written.
        case writeAnswer(LambdaHTTPResponse, for: HTTPRequestHead, close: Bool, heldBytes: Int)
        /// Write a streamed answer's head (chunked; HTTP/1.0: close-delimited, and `close` is set)
        /// and relay its body; call `streamEnded` when the stream ends.
        case writeStreamHead(LambdaHTTPResponse, for: HTTPRequestHead, close: Bool)
        /// The streamed answer completed: write its end (the last chunk), then close with `close`.
        case writeStreamEnd(close: Bool)
        /// The streamed answer broke off: close the connection without its end, so the client
        /// sees an incomplete response.
        case abortStream
        /// An answer nobody will read: give back the budget bytes it held.
        case releaseHeldBytes(Int)
        /// Write `status` with no body and `connection: close`, then close: the request cannot be
        /// read any further.
        case writeBareStatusAndClose(Int)
        case close
        /// Count an answer the connection gives itself (`RequestProcessor.answered`). Boxed: an
        /// answer is some 190 bytes, and every action (three of them inline in `Actions`, several
        /// made per request) would be that size, copied and cleared, for a case met only on refusals.
        indirect case countAnswer(RequestProcessor.Answer)
        /// Count a connection the gateway closes to protect the others.
        case countClosure(ConnectionClosure)
    }

    private var state = State.idle
    private var reader: RequestReader
    /// Parts pipelined behind the request in flight, in order; empty in every other state.
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    /// A read held back while something waits in `pipelined`.
    private var readHeld = false
    private var headTimer = HeadTimer.off
    /// The current read delivered a part: one that delivered none left bytes of a head in the parser.
    private var readDeliveredPart = false
    private let admit: RequestReader.Admit
    private let budgetIsSpent: () -> Bool

    /// `limit`: the request body's. `admit`: the head's checks, for a head that waits for a
    /// go-ahead. `budgetIsSpent`: whether the connection's answers wait unread (`ResponseBudget`).
    init(limit: Int, admit: @escaping RequestReader.Admit, budgetIsSpent: @escaping () -> Bool) {
        self.reader = RequestReader(limit: limit)
        self.admit = admit
        self.budgetIsSpent = budgetIsSpent
    }

    // MARK: Reading

    /// The connection is ready: its first request head is due within the head timeout.
    mutating func handlerAdded() -> Actions {
        headTimer = .armed(headArrived: false, bytesArrived: false)
        return Actions(.armHeadTimer)
    }

    mutating func channelRead(_ part: HTTPServerRequestPart) -> Actions {
        readDeliveredPart = true
        if case .head = part, case .armed(_, let bytesArrived) = headTimer { headTimer = .armed(headArrived: true, bytesArrived: bytesArrived) }
        switch state {
        case .idle, .readingBody:
            return receive(part)
        case .processing, .waitingForBudget, .streaming:
            pipelined.append(part)
            return Actions()
        case .closing, .closed:
            return Actions()
        }
    }

    /// After each read: a read that delivered nothing left part of a head in the parser, which
    /// starts the head timer (also behind a request in flight); a body still arriving keeps the
    /// body timer.
    mutating func channelReadComplete() -> Actions {
        defer { readDeliveredPart = false }
        switch state {
        case .idle, .processing, .waitingForBudget, .streaming:
            guard !readDeliveredPart else { return Actions() }
            switch headTimer {
            case .off:
                headTimer = .armed(headArrived: false, bytesArrived: true)
                return Actions(.armHeadTimer)
            case .armed(let headArrived, _):
                headTimer = .armed(headArrived: headArrived, bytesArrived: true)
                return Actions()
            }
        case .readingBody:
            return reader.isReadingBody ? Actions(.touchBodyTimer) : Actions()
        case .closing, .closed:
            return Actions()
        }
    }

    /// The channel asks to read: held while a pipelined request waits behind the one in flight, so
    /// a client cannot queue requests without bound; otherwise passed on.
    mutating func readRequested() -> Actions {
        guard pipelined.isEmpty else {
            readHeld = true
            return Actions()
        }
        return Actions(.read)
    }

    /// A part taken up now (it just arrived, or its turn behind a request in flight came), in
    /// `idle` or `readingBody`.
    private mutating func receive(_ part: HTTPServerRequestPart) -> Actions {
        var actions = Actions()
        if case .head = part, case .armed = headTimer {
            // The head is complete: its timer is done (the body's starts after the read if needed).
            headTimer = .off
            actions.append(.cancelHeadTimer)
        }
        var closeAfterAnswer = false
        if case .readingBody(let draining) = state { closeAfterAnswer = draining }
        let admit = self.admit
        switch reader.receive(part, admit: admit) {
        case .none:
            state = reader.isIdle ? .idle : .readingBody(closeAfterAnswer: closeAfterAnswer)
        case .sendContinue(let head):
            state = .readingBody(closeAfterAnswer: closeAfterAnswer)
            actions.append(.writeContinue(head.version))
        case .refuse(let answer, let head):
            actions.append(.countAnswer(answer))
            actions.append(.writeAnswer(answer.response, for: head, close: true, heldBytes: 0))
            enterClosing()
        case .process(let head, let request, let endsConnection):
            headTimer = .off
            actions.append(.cancelReadTimers)
            let inFlight = InFlight(head: head, closeAfterAnswer: closeAfterAnswer || endsConnection)
            if budgetIsSpent() {
                // Earlier answers wait unread: this request starts once the client has read enough.
                state = .waitingForBudget(inFlight, request)
                actions.append(.waitForBudget)
            } else {
                state = .processing(inFlight)
                actions.append(.startProcessing(request))
            }
        }
        return actions
    }

    // MARK: Answering

    /// The client has read enough of the earlier answers for the waiting request to start.
    mutating func budgetAvailable() -> Actions {
        guard case .waitingForBudget(let inFlight, let request) = state else { return Actions() }
        state = .processing(inFlight)
        return Actions(.startProcessing(request))
    }

    /// The answer of the request in flight. Then call `takeUpPipelined` until it returns nil.
    /// `streamed`: `response` is a streamed answer's head; its body follows (`streamEnded`).
    mutating func answerReady(_ response: LambdaHTTPResponse, heldBytes: Int, streamed: Bool = false) -> Actions {
        switch state {
        case .processing(let inFlight) where streamed:
            // HTTP/1.0 has no chunked framing: the body ends with the connection.
            let close = inFlight.closeAfterAnswer || inFlight.head.version == .http1_0
            state = .streaming(inFlight, close: close)
            return Actions(.writeStreamHead(response, for: inFlight.head, close: close))
        case .processing(let inFlight):
            let close = inFlight.closeAfterAnswer
            if close {
                enterClosing()
            } else {
                state = .idle
            }
            return Actions(.writeAnswer(response, for: inFlight.head, close: close, heldBytes: heldBytes))
        case .closing, .closed:
            return Actions(.releaseHeldBytes(heldBytes))
        case .idle, .readingBody, .waitingForBudget, .streaming:
            assertionFailure("an answer came with no request being processed: \(state)")
            return Actions(.releaseHeldBytes(heldBytes))
        }
    }

    /// The streamed answer in flight ended: `complete`, its end is written and the connection goes
    /// on (then call `takeUpPipelined`); otherwise the connection closes without it.
    mutating func streamEnded(complete: Bool) -> Actions {
        guard case .streaming(let inFlight, let close) = state else { return Actions() }
        guard complete else {
            enterClosing()
            return Actions(.abortStream)
        }
        let closes = close || inFlight.closeAfterAnswer
        if closes {
            enterClosing()
        } else {
            state = .idle
        }
        return Actions(.writeStreamEnd(close: closes))
    }

    /// After an answer, the parts pipelined behind it, one at a time and in order, as if each had
    /// just arrived; nil once a request is in flight again, the connection is closing, or nothing
    /// waits. One part a call: the handler carries out each part's actions before the next, so a
    /// write that fails and closes the connection leaves the rest unstarted. Reading resumes once
    /// nothing waits.
    mutating func takeUpPipelined() -> Actions? {
        switch state {
        case .idle, .readingBody:
            if let part = pipelined.popFirst() { return receive(part) }
        case .processing, .waitingForBudget, .streaming:
            break
        case .closing, .closed:
            return nil
        }
        guard readHeld, pipelined.isEmpty else { return nil }
        readHeld = false
        return Actions(.read)
    }

    // MARK: Timeouts and the end of the connection

    /// No complete head came within the head timeout: 408 and close, or, behind a request in
    /// flight, close after its answer.
    mutating func headTimerFired() -> Actions {
        guard case .armed(let headArrived, let bytesArrived) = headTimer else { return Actions() }
        headTimer = .off
        guard !headArrived else { return Actions() }
        switch state {
        case .idle, .readingBody:
            var actions = Actions(.countClosure(.requestHeadersTimeout))
            if bytesArrived { actions.append(.countAnswer(.headerTimeout)) }
            actions.append(contentsOf: closeWithBareStatus(408))
            return actions
        case .processing(var inFlight):
            inFlight.closeAfterAnswer = true
            state = .processing(inFlight)
            return Actions(.countClosure(.requestHeadersTimeout))
        case .streaming(var inFlight, let close):
            inFlight.closeAfterAnswer = true
            state = .streaming(inFlight, close: close)
            return Actions(.countClosure(.requestHeadersTimeout))
        case .waitingForBudget(var inFlight, let request):
            inFlight.closeAfterAnswer = true
            state = .waitingForBudget(inFlight, request)
            return Actions(.countClosure(.requestHeadersTimeout))
        case .closing, .closed:
            return Actions()
        }
    }

    /// The body stopped arriving for the body timeout: the request is dropped without a Lambda call.
    mutating func bodyTimerFired() -> Actions {
        guard case .readingBody = state, reader.isReadingBody else { return Actions() }
        let answer = RequestProcessor.Answer.rejected(status: 408, code: "RequestTimeout", message: "the request body paused for longer than the body timeout")
        var actions: Actions = [.countClosure(.clientBodyTimeout), .countAnswer(answer)]
        actions.append(contentsOf: closeWithBareStatus(408))
        return actions
    }

    /// The connection's idle timeout: it closes between requests only, never while one waits.
    mutating func idleTimeout() -> Actions {
        switch state {
        case .idle:
            enterClosing()
            return Actions(.close)
        case .closing:
            return Actions(.close)
        case .readingBody, .waitingForBudget, .processing, .streaming, .closed:
            return Actions()
        }
    }

    /// Draining (`ChannelShouldQuiesceEvent`): an idle connection closes now, a busy one after its
    /// answer (`connection: close`).
    mutating func quiesce() -> Actions {
        switch state {
        case .idle:
            enterClosing()
            return Actions(.close)
        case .readingBody:
            state = .readingBody(closeAfterAnswer: true)
        case .processing(var inFlight):
            inFlight.closeAfterAnswer = true
            state = .processing(inFlight)
        case .streaming(var inFlight, let close):
            inFlight.closeAfterAnswer = true
            state = .streaming(inFlight, close: close)
        case .waitingForBudget(var inFlight, let request):
            inFlight.closeAfterAnswer = true
            state = .waitingForBudget(inFlight, request)
        case .closing, .closed:
            break
        }
        return Actions()
    }

    /// The client is gone: requests it pipelined are dropped, never started (each would invoke the
    /// function for nobody).
    mutating func channelInactive() -> Actions {
        state = .closed
        pipelined.removeAll()
        headTimer = .off
        return Actions(.cancelReadTimers)
    }

    /// A request that cannot be parsed (`HTTPParserError`, as `HTTP1ConnectionHandler` reports
    /// `HTTP1RequestParser`'s errors): headers over the limits get 431,
    /// anything else 400, and the connection closes (the parser cannot go on). Any other error
    /// (TLS, the socket) closes it too.
    mutating func errorCaught(_ error: any Error) -> Actions {
        if case .closed = state { return Actions() }
        guard let parserError = error as? HTTPParserError else {
            enterClosing()
            return Actions(.close)
        }
        return closeWithBareStatus(parserError == .headerOverflow ? 431 : 400)
    }

    /// Answers `status` with no body when nothing is in flight, and closes.
    private mutating func closeWithBareStatus(_ status: Int) -> Actions {
        var nothingInFlight = false
        if case .idle = state { nothingInFlight = true }
        if case .readingBody = state { nothingInFlight = true }
        enterClosing()
        return [.cancelReadTimers, nothingInFlight ? .writeBareStatusAndClose(status) : .close]
    }

    private mutating func enterClosing() {
        state = .closing
        pipelined.removeAll()
    }
}

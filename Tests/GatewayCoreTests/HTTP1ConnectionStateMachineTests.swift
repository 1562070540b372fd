import LambdaPayload
import NIOCore
import NIOHTTP1
import Testing

@testable import GatewayCore

/// The connection's logic without a channel: each event's exact actions, written as lines
/// (`Action.line`) so a sequence reads as what the handler would do.
@Suite("HTTP/1.x connection state machine")
struct HTTP1ConnectionStateMachineTests {
    /// Whether a request ends its connection, in one pass over its fields: what NIO's
    /// `isKeepAlive` and `contains(name: "upgrade")` said, for every mix of `Connection` tokens.
    @Test func endsConnectionAsNIOReadsTheHead() {
        for (head, nioEnds) in Self.connectionCases {
            #expect(HeadFields(head).endsConnection == nioEnds, "\(head)")
        }
    }

    /// Heads with every mix of `connectionOptions`, with and without an `Upgrade`, on HTTP/1.0
    /// and 1.1, and whether each ends its connection as NIO's `isKeepAlive` and
    /// `contains(name: "upgrade")` read it.
    static var connectionCases: [(head: HTTPRequestHead, nioEnds: Bool)] {
        [HTTPVersion.http1_0, .http1_1].flatMap { version in
            connectionOptions.flatMap { connection in
                [false, true].map { upgrade in
                    var fields = connection.map { ("Connection", $0) }
                    if upgrade { fields.append(("Upgrade", "websocket")) }
                    fields.append(("Host", "orders"))
                    let head = HTTPRequestHead(version: version, method: .GET, uri: "/", headers: HTTPHeaders(fields))
                    return (head, !head.isKeepAlive || head.headers.contains(name: "upgrade"))
                }
            }
        }
    }

    /// `Connection` fields (one array, one head) whose options end a connection or keep it.
    static let connectionOptions: [[String]] = [
        [], ["close"], ["keep-alive"], ["Keep-Alive"], [" close\t"], ["keep-alive, close"], ["close, keep-alive"], ["keep-alive", "keep-alive"],
        ["keep-alive, keep-alive"], ["Upgrade, keep-alive"], ["foo"], [""], [",,"], ["keep-alive", "close"], ["closed"], ["keep-alive2"], ["te, CLOSE"],
        ["KEEP-ALIVE ,\tfoo"], ["close,"], ["\tkeep-alive"],
    ]

    /// Whether the connection's answers wait unread, as the test sets it.
    final class Budget {
        var spent = false
    }

    static func machine(limit: Int = 1024, refusal: RequestProcessor.Answer? = nil, budget: Budget = Budget()) -> HTTP1ConnectionStateMachine {
        HTTP1ConnectionStateMachine(limit: limit, admit: { _, _ in refusal }, budgetIsSpent: { budget.spent })
    }

    static func head(_ method: HTTPMethod = .GET, _ uri: String = "/a", version: HTTPVersion = .http1_1, _ headers: [(String, String)] = []) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders([("host", "orders")] + headers))
    }

    // MARK: Reading and answering

    @Test func aNewConnectionsFirstHeadIsDueWithinTheHeadTimeoutAndStopsTheTimer() {
        var machine = Self.machine()
        #expect(machine.handlerAdded().lines == ["armHeadTimer"])
        #expect(machine.channelReadComplete().lines == [], "bytes of a head: the timer runs already")
        #expect(machine.channelRead(.head(Self.head())).lines == ["cancelHeadTimer"])
        #expect(machine.channelRead(.end(nil)).lines == ["cancelReadTimers", "start GET /a body=0"])
        #expect(machine.channelReadComplete().lines == [])
        #expect(machine.headTimerFired().lines == [], "a timer the handler failed to cancel does nothing")
    }

    @Test func aKeptAliveConnectionAnswersEachRequestAndReadsOn() {
        var machine = Self.machine()
        #expect(machine.receive(Self.head()) == ["cancelReadTimers", "start GET /a body=0"])
        #expect(machine.readRequested().lines == ["read"], "nothing waits: reading goes on while a request is answered")
        #expect(machine.answer(held: 7) == ["answer 200 to GET /a held=7"])
        #expect(machine.receive(Self.head(.HEAD, "/b")) == ["cancelReadTimers", "start HEAD /b body=0"])
        #expect(machine.answer() == ["answer 200 to HEAD /b"])
        #expect(machine.readRequested().lines == ["read"])
    }

    @Test(arguments: [
        ("HTTP/1.0", HTTPVersion.http1_0, [(String, String)]()),
        ("Connection: close", .http1_1, [("connection", "close")]),
        ("Upgrade", .http1_1, [("connection", "Upgrade"), ("upgrade", "websocket")]),
    ])
    func theseRequestsEndTheConnectionAfterTheirAnswer(_ kind: String, version: HTTPVersion, headers: [(String, String)]) {
        var machine = Self.machine()
        _ = machine.receive(Self.head(version: version, headers))
        #expect(machine.channelRead(.head(Self.head(.GET, "/b"))).lines == [], "\(kind): a request behind it is kept for nothing")
        #expect(machine.channelRead(.end(nil)).lines == [])
        #expect(machine.answer() == ["answer 200 to GET /a close"], "\(kind)")
        #expect(machine.channelRead(.head(Self.head(.GET, "/c"))).lines == [])
        #expect(machine.idleTimeout().lines == ["close"])
    }

    @Test func anHTTP10RequestWithKeepAliveKeepsTheConnection() {
        var machine = Self.machine()
        _ = machine.receive(Self.head(version: .http1_0, [("connection", "keep-alive")]))
        #expect(machine.answer() == ["answer 200 to GET /a"])
    }

    @Test func aBodyIsCollectedWithItsTimerTouchedAfterEachRead() {
        var machine = Self.machine()
        #expect(machine.channelRead(.head(Self.head(.POST, "/u", [("content-length", "5")]))).lines == [])
        #expect(machine.channelReadComplete().lines == ["touchBodyTimer"])
        #expect(machine.channelRead(.body(ByteBuffer(string: "ab"))).lines == [])
        #expect(machine.channelReadComplete().lines == ["touchBodyTimer"])
        #expect(machine.channelReadComplete().lines == ["touchBodyTimer"], "a read of body bytes the decoder keeps")
        #expect(machine.channelRead(.body(ByteBuffer(string: "cde"))).lines == [])
        #expect(machine.channelRead(.end(nil)).lines == ["cancelReadTimers", "start POST /u body=5"])
        #expect(machine.channelReadComplete().lines == [])
        #expect(machine.bodyTimerFired().lines == [], "the body is complete: its timer does nothing")
    }

    @Test func pipelinedRequestsWaitBehindTheOneInFlightAndAreTakenUpInOrder() {
        var machine = Self.machine()
        #expect(machine.receive(Self.head(.GET, "/a")) == ["cancelReadTimers", "start GET /a body=0"])
        #expect(machine.receive(Self.head(.GET, "/b")) == [])
        #expect(machine.receive(Self.head(.POST, "/c", [("content-length", "2")]), body: "hi") == [])
        #expect(machine.readRequested().lines == [], "held: a request waits")
        #expect(machine.answer() == ["answer 200 to GET /a", "cancelReadTimers", "start GET /b body=0"])
        #expect(machine.readRequested().lines == [], "still held: /c waits")
        // /c is taken up whole, and with nothing left waiting the held read goes on.
        #expect(machine.answer(status: 404) == ["answer 404 to GET /b", "cancelReadTimers", "start POST /c body=2", "read"])
        #expect(machine.answer() == ["answer 200 to POST /c"])
        #expect(machine.readRequested().lines == ["read"])
    }

    // MARK: Streamed answers

    @Test func aStreamedAnswerHoldsPipelinedRequestsUntilItsEndIsWritten() {
        var machine = Self.machine()
        _ = machine.receive(Self.head(.GET, "/events"))
        #expect(machine.answerReady(LambdaHTTPResponse(status: 200), heldBytes: 0, streamed: true).lines == ["stream head 200 to GET /events"])
        #expect(machine.takeUpPipelined() == nil)
        #expect(machine.receive(Self.head(.GET, "/b")) == [], "pipelined behind the stream")
        #expect(machine.readRequested().lines == [], "held while /b waits")
        #expect(machine.idleTimeout().lines == [], "a connection relaying a stream is not idle")
        #expect(machine.streamEnded(complete: true).lines == ["stream end"])
        var taken: [String] = []
        while let more = machine.takeUpPipelined() { taken += more.lines }
        #expect(taken == ["cancelReadTimers", "start GET /b body=0", "read"])
    }

    @Test func aStreamThatBreaksOffClosesTheConnectionWithoutItsEndAndStartsNothingPipelined() {
        var machine = Self.machine()
        _ = machine.receive(Self.head(.GET, "/events"))
        _ = machine.answerReady(LambdaHTTPResponse(status: 200), heldBytes: 0, streamed: true)
        _ = machine.receive(Self.head(.GET, "/b"))
        #expect(machine.streamEnded(complete: false).lines == ["abort stream"])
        #expect(machine.takeUpPipelined() == nil)
        #expect(machine.streamEnded(complete: true).lines == [], "a second end does nothing")
    }

    @Test func aStreamToAnHTTP10ClientEndsWithTheConnection() {
        var machine = Self.machine()
        _ = machine.receive(Self.head(.GET, "/events", version: .http1_0, [("connection", "keep-alive")]))
        #expect(machine.answerReady(LambdaHTTPResponse(status: 200), heldBytes: 0, streamed: true).lines == ["stream head 200 to GET /events close"])
        #expect(machine.streamEnded(complete: true).lines == ["stream end close"])
    }

    @Test func drainingOrAHeadTimeoutDuringAStreamClosesAfterItsEnd() {
        var draining = Self.machine()
        _ = draining.receive(Self.head(.GET, "/events"))
        _ = draining.answerReady(LambdaHTTPResponse(status: 200), heldBytes: 0, streamed: true)
        #expect(draining.quiesce().lines == [])
        #expect(draining.streamEnded(complete: true).lines == ["stream end close"])

        var partialHead = Self.machine()
        _ = partialHead.handlerAdded()
        _ = partialHead.receive(Self.head(.GET, "/events"))
        _ = partialHead.answerReady(LambdaHTTPResponse(status: 200), heldBytes: 0, streamed: true)
        #expect(partialHead.channelReadComplete().lines == ["armHeadTimer"], "bytes of a head behind the stream")
        #expect(partialHead.headTimerFired().lines == ["closure request_headers_timeout"])
        #expect(partialHead.streamEnded(complete: true).lines == ["stream end close"])
    }

    @Test func aClientThatGoesAwayMidStreamEndsIt() {
        var machine = Self.machine()
        _ = machine.receive(Self.head(.GET, "/events"))
        _ = machine.answerReady(LambdaHTTPResponse(status: 200), heldBytes: 0, streamed: true)
        #expect(machine.channelInactive().lines == ["cancelReadTimers"])
        #expect(machine.streamEnded(complete: true).lines == [], "nothing is written to a closed connection")
    }

    @Test func aConnectionThatFailsWhileAnAnswerIsWrittenStartsNothingPipelined() {
        var machine = Self.machine()
        _ = machine.receive(Self.head(.GET, "/a"))
        _ = machine.receive(Self.head(.GET, "/b"))
        #expect(machine.answerReady(LambdaHTTPResponse(status: 200), heldBytes: 0).lines == ["answer 200 to GET /a"])
        // The write failed at once and NIO closed the channel before the handler took up /b.
        _ = machine.channelInactive()
        #expect(machine.takeUpPipelined() == nil)
    }

    @Test func aPipelinedRequestWhoseHeadIsRefusedEndsTheConnectionAndNothingBehindItStarts() {
        var machine = Self.machine()
        _ = machine.receive(Self.head(.GET, "/a"))
        _ = machine.receive(Self.head(.CONNECT, "example.com:443"))
        _ = machine.receive(Self.head(.GET, "/c"))
        #expect(machine.answer() == ["answer 200 to GET /a", "count 405 rejected", "answer 405 to CONNECT example.com:443 close"])
        #expect(machine.answerReady(LambdaHTTPResponse(status: 200), heldBytes: 3).lines == ["release 3"])
    }

    @Test func aGoAheadIsWrittenOnlyOnceTheHeadPassesItsChecks() {
        let expecting = Self.head(.POST, "/u", [("content-length", "2"), ("expect", "100-continue")])
        var admitted = Self.machine()
        #expect(admitted.channelRead(.head(expecting)).lines == ["writeContinue HTTP/1.1"])
        #expect(admitted.channelRead(.body(ByteBuffer(string: "hi"))).lines == [])
        #expect(admitted.channelRead(.end(nil)).lines == ["cancelReadTimers", "start POST /u body=2"])

        var refused = Self.machine(refusal: RequestProcessor.Answer.denied)
        #expect(refused.channelRead(.head(expecting)).lines == ["count 403 denied", "answer 403 to POST /u close"])
        #expect(refused.channelRead(.body(ByteBuffer(string: "hi"))).lines == [])
        #expect(refused.channelRead(.end(nil)).lines == [])
    }

    @Test func aHeadRefusedBeforeAnyCheckIsCountedAnsweredAndClosesTheConnection() {
        var machine = Self.machine()
        #expect(machine.channelRead(.head(Self.head(.GET, "/x#frag"))).lines == ["count 400 rejected", "answer 400 to GET /x#frag close"])
        #expect(machine.channelRead(.end(nil)).lines == [])
        #expect(machine.receive(Self.head(.GET, "/next")) == [], "nothing starts on a closing connection")
    }

    @Test func aBodyOverTheLimitIsRefusedWith413() {
        var machine = Self.machine(limit: 4)
        _ = machine.channelRead(.head(Self.head(.POST, "/u", [("transfer-encoding", "chunked")])))
        #expect(machine.channelRead(.body(ByteBuffer(string: "12345"))).lines == ["count 413 rejected", "answer 413 to POST /u close"])
        #expect(machine.channelRead(.end(nil)).lines == [])
    }

    @Test func aRequestWaitsWhileTheConnectionsAnswersAreUnreadAndStartsOnceThereIsRoom() {
        let budget = Budget()
        budget.spent = true
        var machine = Self.machine(budget: budget)
        #expect(machine.receive(Self.head()) == ["cancelReadTimers", "waitForBudget"])
        #expect(machine.receive(Self.head(.GET, "/b")) == [], "a pipelined request waits behind it")
        budget.spent = false
        #expect(machine.budgetAvailable().lines == ["start GET /a body=0"])
        #expect(machine.budgetAvailable().lines == [])
        #expect(machine.answer() == ["answer 200 to GET /a", "cancelReadTimers", "start GET /b body=0"])
    }

    @Test func aRequestWaitingForRoomOnAConnectionThatWentAwayNeverStarts() {
        let budget = Budget()
        budget.spent = true
        var machine = Self.machine(budget: budget)
        _ = machine.receive(Self.head())
        #expect(machine.channelInactive().lines == ["cancelReadTimers"])
        #expect(machine.budgetAvailable().lines == [])
    }

    // MARK: Read timeouts

    @Test func aHeadNotCompleteWithinTheHeadTimeoutIsAnswered408() {
        var machine = Self.machine()
        _ = machine.handlerAdded()
        #expect(machine.headTimerFired().lines == ["closure request_headers_timeout", "cancelReadTimers", "bare 408 close"])
        #expect(machine.channelRead(.head(Self.head())).lines == [])
        #expect(machine.channelRead(.end(nil)).lines == [])
    }

    @Test func aHeadBegunAndNotCompleteIsARequestCountedAndLoggedWhenItTimesOut() {
        var machine = Self.machine()
        _ = machine.handlerAdded()
        // A read that delivered no part: bytes of a head wait in the decoder.
        #expect(machine.channelReadComplete().lines == [], "the timer runs from the connection's start")
        #expect(machine.headTimerFired().lines == ["closure request_headers_timeout", "count 408 rejected", "cancelReadTimers", "bare 408 close"])
        // Between requests too, where the partial head starts the timer.
        var kept = Self.machine()
        _ = kept.receive(Self.head())
        _ = kept.answer()
        #expect(kept.channelReadComplete().lines == ["armHeadTimer"])
        #expect(kept.headTimerFired().lines == ["closure request_headers_timeout", "count 408 rejected", "cancelReadTimers", "bare 408 close"])
    }

    @Test func betweenRequestsOnlyAReadThatLeftPartOfAHeadStartsTheHeadTimer() {
        var machine = Self.machine()
        _ = machine.receive(Self.head())
        _ = machine.answer()
        // A kept-alive connection waiting for its next request has no timer; a partial head does.
        #expect(machine.channelReadComplete().lines == ["armHeadTimer"])
        #expect(machine.channelReadComplete().lines == [], "armed once, from the head's first bytes")
        #expect(machine.channelRead(.head(Self.head(.GET, "/b"))).lines == ["cancelHeadTimer"])
        #expect(machine.headTimerFired().lines == [])
    }

    @Test func aPartialHeadBehindARequestInFlightClosesTheConnectionAfterThatAnswer() {
        var machine = Self.machine()
        _ = machine.receive(Self.head())
        #expect(machine.channelReadComplete().lines == ["armHeadTimer"])
        #expect(machine.headTimerFired().lines == ["closure request_headers_timeout"])
        #expect(machine.answer() == ["answer 200 to GET /a close"])
    }

    @Test func aHeadPipelinedBehindARequestInFlightDisarmsTheHeadTimer() {
        var machine = Self.machine()
        _ = machine.receive(Self.head())
        _ = machine.channelReadComplete()
        #expect(machine.receive(Self.head(.GET, "/b")) == [])
        #expect(machine.headTimerFired().lines == [], "a head came since the timer started")
        #expect(machine.answer() == ["answer 200 to GET /a", "cancelReadTimers", "start GET /b body=0"])
    }

    @Test func aBodyThatStopsArrivingIsAnswered408WithoutALambdaCall() {
        var machine = Self.machine()
        _ = machine.channelRead(.head(Self.head(.POST, "/u", [("content-length", "10")])))
        _ = machine.channelRead(.body(ByteBuffer(string: "01234")))
        #expect(machine.channelReadComplete().lines == ["touchBodyTimer"])
        #expect(machine.bodyTimerFired().lines == ["closure client_body_timeout", "count 408 rejected", "cancelReadTimers", "bare 408 close"])
        #expect(machine.channelRead(.body(ByteBuffer(string: "56789"))).lines == [])
        #expect(machine.channelRead(.end(nil)).lines == [], "never started")
    }

    // MARK: Idle timeout, draining, the end of the connection

    @Test func theIdleTimeoutClosesOnlyBetweenRequests() {
        var machine = Self.machine()
        _ = machine.channelRead(.head(Self.head(.POST, "/u", [("content-length", "1")])))
        #expect(machine.idleTimeout().lines == [], "a body is arriving")
        _ = machine.channelRead(.body(ByteBuffer(string: "x")))
        _ = machine.channelRead(.end(nil))
        #expect(machine.idleTimeout().lines == [], "a request is answered")
        _ = machine.answer()
        #expect(machine.idleTimeout().lines == ["close"])
        #expect(machine.receive(Self.head(.GET, "/late")) == [])
    }

    @Test func drainingClosesAnIdleConnectionAtOnce() {
        var machine = Self.machine()
        #expect(machine.quiesce().lines == ["close"])
        #expect(machine.receive(Self.head()) == [])
        #expect(machine.quiesce().lines == [])
    }

    @Test func drainingMakesTheAnswerInFlightTheLastAndDropsWhatWasPipelined() {
        var machine = Self.machine()
        _ = machine.receive(Self.head())
        _ = machine.receive(Self.head(.GET, "/b"))
        #expect(machine.quiesce().lines == [])
        #expect(machine.answer() == ["answer 200 to GET /a close"])
    }

    @Test func drainingWhileABodyArrivesClosesAfterThatRequestsAnswer() {
        var machine = Self.machine()
        _ = machine.channelRead(.head(Self.head(.POST, "/u", [("content-length", "1")])))
        #expect(machine.quiesce().lines == [])
        _ = machine.channelRead(.body(ByteBuffer(string: "x")))
        #expect(machine.channelRead(.end(nil)).lines == ["cancelReadTimers", "start POST /u body=1"])
        #expect(machine.answer() == ["answer 200 to POST /u close"])
    }

    @Test func aClientThatGoesAwayLeavesItsPipelinedRequestsUnstartedAndItsAnswersBytesAreGivenBack() {
        var machine = Self.machine()
        _ = machine.receive(Self.head())
        _ = machine.receive(Self.head(.GET, "/b"))
        _ = machine.readRequested()
        #expect(machine.channelInactive().lines == ["cancelReadTimers"])
        #expect(machine.answer(held: 42) == ["release 42"])
        #expect(machine.idleTimeout().lines == [])
        #expect(machine.quiesce().lines == [])
        #expect(machine.errorCaught(ChannelError.ioOnClosedChannel).lines == [])
    }

    @Test(arguments: [
        (HTTPParserError.headerOverflow, 431),
        (.invalidContentLength, 400),
        (.invalidMethod, 400),
    ])
    func aRequestThatCannotBeParsedGetsABareStatusAndTheConnectionCloses(_ error: HTTPParserError, status: Int) {
        var idle = Self.machine()
        #expect(idle.errorCaught(error).lines == ["cancelReadTimers", "bare \(status) close"])
        #expect(idle.receive(Self.head()) == [])

        var readingBody = Self.machine()
        _ = readingBody.channelRead(.head(Self.head(.POST, "/u", [("transfer-encoding", "chunked")])))
        #expect(readingBody.errorCaught(error).lines == ["cancelReadTimers", "bare \(status) close"])
    }

    @Test func aParseErrorBehindARequestInFlightClosesAtOnceWithoutAnAnswer() {
        var machine = Self.machine()
        _ = machine.receive(Self.head())
        #expect(machine.errorCaught(HTTPParserError.invalidMethod).lines == ["cancelReadTimers", "close"])
        #expect(machine.answer(held: 5) == ["release 5"])
    }

    @Test func anyOtherErrorClosesTheConnection() {
        var machine = Self.machine()
        _ = machine.receive(Self.head())
        #expect(machine.errorCaught(ChannelError.ioOnClosedChannel).lines == ["close"])
        #expect(machine.answer() == ["release 0"])
    }
}

extension HTTP1ConnectionStateMachine {
    /// A request arriving whole in one read; the actions of its parts and of the read's end.
    mutating func receive(_ head: HTTPRequestHead, body: String? = nil) -> [String] {
        var lines = channelRead(.head(head)).lines
        if let body { lines += channelRead(.body(ByteBuffer(string: body))).lines }
        return lines + channelRead(.end(nil)).lines + channelReadComplete().lines
    }

    /// The answer of the request in flight, then every pipelined part taken up, as the handler does.
    mutating func answer(status: Int = 200, held: Int = 0) -> [String] {
        var lines = answerReady(LambdaHTTPResponse(status: status), heldBytes: held).lines
        while let more = takeUpPipelined() { lines += more.lines }
        return lines
    }
}

extension HTTP1ConnectionStateMachine.Action {
    /// The action and what identifies its effect, in one line.
    var line: String {
        switch self {
        case .read: "read"
        case .armHeadTimer: "armHeadTimer"
        case .cancelHeadTimer: "cancelHeadTimer"
        case .touchBodyTimer: "touchBodyTimer"
        case .cancelReadTimers: "cancelReadTimers"
        case .writeContinue(let version): "writeContinue \(version)"
        case .startProcessing(let request): "start \(request.method) \(request.target) body=\(request.body.readableBytes)"
        case .waitForBudget: "waitForBudget"
        case .writeAnswer(let response, let head, let close, let held):
            "answer \(response.status) to \(head.method) \(head.uri)" + (close ? " close" : "") + (held > 0 ? " held=\(held)" : "")
        case .releaseHeldBytes(let bytes): "release \(bytes)"
        case .writeBareStatusAndClose(let status): "bare \(status) close"
        case .close: "close"
        case .countAnswer(let answer): "count \(answer.response.status) \(answer.outcome.rawValue)"
        case .countClosure(let reason): "closure \(reason.rawValue)"
        case .writeStreamHead(let response, let head, let close): "stream head \(response.status) to \(head.method) \(head.uri)" + (close ? " close" : "")
        case .writeStreamEnd(let close): "stream end" + (close ? " close" : "")
        case .abortStream: "abort stream"
        }
    }
}

extension HTTP1ConnectionStateMachine.Actions {
    var lines: [String] { map(\.line) }
}

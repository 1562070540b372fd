import LambdaPayload
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import Testing

@testable import GatewayCore

/// One HTTP/2 stream's logic without a channel: each event's action, written as a line
/// (`Action.line`) so a sequence reads as what the handler would do.
@Suite("HTTP/2 stream state machine")
struct HTTP2StreamStateMachineTests {
    final class Budget {
        var spent = false
    }

    static func machine(limit: Int = 1024, refusal: RequestProcessor.Answer? = nil, budget: Budget = Budget()) -> HTTP2StreamStateMachine {
        HTTP2StreamStateMachine(limit: limit, admit: { _, _ in refusal }, budgetIsSpent: { budget.spent })
    }

    static func headers(_ method: String = "GET", _ path: String = "/a", authority: String? = "orders", _ extra: [(String, String)] = []) -> HPACKHeaders {
        var fields = [(":method", method), (":scheme", "https"), (":path", path)]
        if let authority { fields.append((":authority", authority)) }
        return HPACKHeaders(fields + extra)
    }

    static func processed(_ status: Int = 200, stream: ResponseStream? = nil) -> RequestProcessor.Processed {
        RequestProcessor.Processed(answer: RequestProcessor.Answer(response: LambdaHTTPResponse(status: status), outcome: .invoked, details: "via_upstream"), heldBytes: 3, stream: stream)
    }

    /// A header block that breaks RFC 9113's rules resets its stream, whatever its frames; so do
    /// trailers that do, and a request with bad trailers is never processed.
    @Test func aMalformedHeaderBlockOrTrailersResetTheStreamWithoutProcessing() {
        var machine = Self.machine()
        #expect(machine.headersReceived(Self.headers("GET", "/a", authority: "orders", [("Connection", "close")]), endStream: true).line.hasPrefix("reset PROTOCOL_ERROR: the field name"))
        #expect(machine.dataReceived(ByteBuffer(string: "late"), endStream: true).line == "none")
        #expect(machine.streamClosed().line == "none")

        var trailed = Self.machine()
        #expect(trailed.headersReceived(Self.headers("POST", "/a"), endStream: false).line == "none")
        #expect(trailed.dataReceived(ByteBuffer(string: "body"), endStream: false).line == "none")
        #expect(trailed.headersReceived(HPACKHeaders([(":path", "/b")]), endStream: true).line == "reset PROTOCOL_ERROR: trailers carry no pseudo-header")
        #expect(trailed.streamClosed().line == "none", "nothing was processed, nothing to cancel")
    }

    @Test func aRequestInOneHeadersFrameIsProcessedAndAnsweredOnce() {
        var machine = Self.machine()
        #expect(machine.headersReceived(Self.headers(), endStream: true).line == "start GET /a host=orders body=0")
        #expect(machine.readComplete().line == "none", "no body arrives: no body timer")
        #expect(machine.dataReceived(ByteBuffer(string: "late"), endStream: true).line == "none", "frames after the request are dropped")
        #expect(machine.answerReady(Self.processed()).line == "answer 200 to GET /a")
        #expect(machine.streamClosed().line == "none", "an answered stream has nothing to cancel")
    }

    @Test func aBodyInPiecesKeepsTheBodyTimerUntilItsEnd() {
        var machine = Self.machine()
        #expect(machine.headersReceived(Self.headers("POST"), endStream: false).line == "none")
        #expect(machine.readComplete().line == "touchBodyTimer")
        #expect(machine.dataReceived(ByteBuffer(string: "hello "), endStream: false).line == "none")
        #expect(machine.readComplete().line == "touchBodyTimer")
        #expect(machine.dataReceived(ByteBuffer(string: "world"), endStream: true).line == "start POST /a host=orders body=hello world")
        #expect(machine.readComplete().line == "none")
        #expect(machine.bodyTimerFired().line == "none", "a timer the handler failed to cancel does nothing")
    }

    @Test func trailersOrAnEmptyDataFrameEndTheRequest() {
        var trailers = Self.machine()
        _ = trailers.headersReceived(Self.headers("POST"), endStream: false)
        _ = trailers.dataReceived(ByteBuffer(string: "x"), endStream: false)
        #expect(trailers.headersReceived(HPACKHeaders([("x-checksum", "1")]), endStream: true).line == "start POST /a host=orders body=x")

        var empty = Self.machine()
        _ = empty.headersReceived(Self.headers("POST"), endStream: false)
        #expect(empty.dataReceived(ByteBuffer(), endStream: true).line == "start POST /a host=orders body=0")
    }

    @Test func theAuthorityIsTheHostUnlessAHostFieldIsThereAndWithoutOneTheStreamIsA400() throws {
        let head = try HTTP2StreamStateMachine.requestHead(Self.headers("GET", "/p?q=1", authority: "orders.example", [("accept", "*/*")]))
        #expect(head.uri == "/p?q=1" && head.method == .GET && head.version == .http2)
        #expect(head.headers.map { "\($0.name)=\($0.value)" } == ["host=orders.example", "accept=*/*"])
        let both = try HTTP2StreamStateMachine.requestHead(Self.headers(authority: "a.example", [("host", "b.example")]))
        #expect(both.headers.map { "\($0.name)=\($0.value)" } == ["host=b.example"])

        var machine = Self.machine()
        #expect(machine.headersReceived(Self.headers(authority: nil), endStream: true).line == "answerEarly 400 MalformedRequest")
        #expect(machine.dataReceived(ByteBuffer(string: "x"), endStream: true).line == "none")
    }

    @Test func aBodyOverTheLimitIsA413AndTheRestOfTheStreamIsDropped() {
        var machine = Self.machine(limit: 4)
        _ = machine.headersReceived(Self.headers("POST"), endStream: false)
        #expect(machine.dataReceived(ByteBuffer(string: "12345"), endStream: false).line == "answerEarly 413 RequestTooLarge")
        #expect(machine.dataReceived(ByteBuffer(string: "6"), endStream: true).line == "none")
        #expect(machine.readComplete().line == "none")
    }

    @Test func aGoAheadIsGivenOnlyToAHeadThatPassesItsChecks() {
        var passing = Self.machine()
        #expect(passing.headersReceived(Self.headers("POST", "/a", [("expect", "100-continue")]), endStream: false).line == "writeContinue")
        #expect(passing.dataReceived(ByteBuffer(string: "b"), endStream: true).line == "start POST /a host=orders body=b")

        var refused = Self.machine(refusal: .rejected(status: 403, code: "AccessDenied", message: ""))
        #expect(refused.headersReceived(Self.headers("POST", "/a", [("expect", "100-continue")]), endStream: false).line == "answerEarly 403 AccessDenied")

        var bodyless = Self.machine()
        #expect(
            bodyless.headersReceived(Self.headers("POST", "/a", [("expect", "100-continue")]), endStream: true).line == "start POST /a host=orders body=0", "no body follows: no go-ahead to wait for")
    }

    @Test func aRequestWhileTheConnectionsAnswersWaitUnreadIsRefused() {
        let budget = Budget()
        budget.spent = true
        var machine = Self.machine(budget: budget)
        #expect(machine.headersReceived(Self.headers(), endStream: true).line == "refuseStream")
        #expect(machine.streamClosed().line == "none")
    }

    @Test func aBodyThatPausesTooLongIsA408CountedAsAClosure() {
        var machine = Self.machine()
        _ = machine.headersReceived(Self.headers("POST", "/slow"), endStream: false)
        _ = machine.dataReceived(ByteBuffer(string: "x"), endStream: false)
        #expect(machine.bodyTimerFired().line == "answerEarly 408 RequestTimeout client_body_timeout")
        #expect(machine.dataReceived(ByteBuffer(string: "y"), endStream: true).line == "none")
    }

    @Test func aStreamResetWhileItsRequestIsProcessedCancelsItAndItsAnswerIsDropped() {
        var machine = Self.machine()
        _ = machine.headersReceived(Self.headers(), endStream: true)
        #expect(machine.streamClosed().line == "cancelProcessing")
        #expect(machine.answerReady(Self.processed(502)).line == "drop 502 held=3")
        #expect(machine.streamClosed().line == "none")
    }

    @Test func aStreamedAnswerIsRelayedUntilItEndsOrTheStreamCloses() {
        var machine = Self.machine()
        _ = machine.headersReceived(Self.headers(), endStream: true)
        let stream = ResponseStream(eventLoop: EmbeddedEventLoop(), budget: nil)
        #expect(machine.answerReady(Self.processed(stream: stream)).line == "answer 200 to GET /a streamed")
        #expect(machine.streamClosed().line == "abandonRelay")

        var ended = Self.machine()
        _ = ended.headersReceived(Self.headers(), endStream: true)
        _ = ended.answerReady(Self.processed(stream: stream))
        ended.relayEnded()
        #expect(ended.streamClosed().line == "none", "a relay that ended has nothing to abandon")
    }

    @Test func aHeaderBlockThatIsNotARequestIsAnsweredForItsOwnMethod() {
        var machine = Self.machine()
        let action = machine.headersReceived(Self.headers("HEAD", "/h", authority: nil), endStream: true)
        guard case .answerEarly(let answer, let head, _) = action else {
            Issue.record("\(action.line)")
            return
        }
        #expect(answer.response.status == 400)
        #expect(head.method == .HEAD && head.uri == "/h", "a HEAD gets its answer without a body")
    }
}

extension HTTP2StreamStateMachine.Action {
    var line: String {
        switch self {
        case .none: return "none"
        case .writeContinue: return "writeContinue"
        case .touchBodyTimer: return "touchBodyTimer"
        case .startProcessing(let head, let request):
            let host = head.headers.first(name: "host") ?? "-"
            let body = request.body.readableBytes == 0 ? "0" : String(buffer: request.body)
            return "start \(request.method) \(request.target) host=\(host) body=\(body)"
        case .refuseStream: return "refuseStream"
        case .resetMalformed(let violation): return "reset PROTOCOL_ERROR: \(violation)"
        case .answerEarly(let answer, _, let closure):
            let code = answer.details.replacingOccurrences(of: "rejected{", with: "").replacingOccurrences(of: "}", with: "")
            return "answerEarly \(answer.response.status) \(code)" + (closure.map { " \($0.rawValue)" } ?? "")
        case .writeAnswer(let processed, let head):
            return "answer \(processed.response.status) to \(head.method) \(head.uri)" + (processed.stream == nil ? "" : " streamed")
        case .dropAnswer(let processed): return "drop \(processed.response.status) held=\(processed.heldBytes)"
        case .cancelProcessing: return "cancelProcessing"
        case .abandonRelay: return "abandonRelay"
        }
    }
}

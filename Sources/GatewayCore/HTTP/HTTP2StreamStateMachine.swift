import LambdaPayload
import NIOCore
import NIOHPACK
import NIOHTTP1

/// What one HTTP/2 stream of a client connection does, without doing it: `HTTP2Stream`
/// feeds it the stream's frames and the request's progress, and carries out the action each event
/// returns (docs/ARCHITECTURE.md, HTTP/1.x and HTTP/2).
///
/// A stream carries one request: its HEADERS (the head), DATA (the body, bounded by the Lambda
/// limit) and the END_STREAM that completes it; then one answer, buffered or streamed. Anything
/// the client sends after the answer started is dropped. The header block's fields are checked here
/// (`HTTP2FieldRules`); DATA arrives checked by NIO's HTTP/2 handler against `content-length`.
struct HTTP2StreamStateMachine {
    private enum State {
        /// The request's frames are arriving: `RequestReader` keeps its head and body.
        case reading
        /// The request is being processed: its answer comes as `answerReady`.
        case processing(HTTPRequestHead)
        /// A streamed answer's head is written and its body is being relayed.
        case relaying
        /// Answered, early or not: frames that still arrive are dropped.
        case answered
        /// The stream is closed (the client reset it, or the connection went away).
        case closed
    }

    enum Action {
        case none
        /// `100 Continue`, the go-ahead for a body.
        case writeContinue
        /// Process the request; stop the body timer. Its answer comes back as `answerReady`.
        case startProcessing(HTTPRequestHead, GatewayRequest)
        /// The connection's answers wait unread: reset the stream with REFUSED_STREAM (a client may
        /// retry it) and count it as a 503 refusal.
        case refuseStream
        /// The request's header block or trailers break RFC 9113's rules (`HTTP2FieldRules`): reset
        /// the stream with PROTOCOL_ERROR (a stream error, §8.1.1); nothing is invoked.
        case resetMalformed(HTTP2FieldRules.Violation)
        /// Answer `head` before its request was complete, then close the stream (the client may
        /// still be sending a body); stop the body timer. `closure`: a connection-level reason to count.
        case answerEarly(RequestProcessor.Answer, HTTPRequestHead, closure: ConnectionClosure?)
        /// Write the processed answer (or, for a streamed one, its head and then its body).
        case writeAnswer(RequestProcessor.Processed, HTTPRequestHead)
        /// An answer nobody will read: end it (a streamed one is abandoned) and give back what it holds.
        case dropAnswer(RequestProcessor.Processed)
        /// The caller went away before the answer: cancel the request being processed.
        case cancelProcessing
        /// The caller went away during a streamed answer: abandon it.
        case abandonRelay
        /// Restart the body timer: more of the body may follow.
        case touchBodyTimer
    }

    private var state = State.reading
    private var reader: RequestReader
    private let admit: RequestReader.Admit
    private let budgetIsSpent: () -> Bool

    /// `limit`: the request body's. `admit`: the head's checks, for a head that waits for a
    /// go-ahead. `budgetIsSpent`: whether the connection's answers wait unread (`ResponseBudget`).
    init(limit: Int, admit: @escaping RequestReader.Admit, budgetIsSpent: @escaping () -> Bool) {
        self.reader = RequestReader(limit: limit)
        self.admit = admit
        self.budgetIsSpent = budgetIsSpent
    }

    /// The head an answer to a header block that is not a request is written for: its `:method`
    /// (a HEAD gets no body) and `:path`, as far as they are there.
    static func placeholderHead(_ headers: HPACKHeaders) -> HTTPRequestHead {
        let method = headers.first(name: ":method").map { HTTPMethod(rawValue: $0) } ?? .GET
        return HTTPRequestHead(version: .http2, method: method, uri: headers.first(name: ":path") ?? "/")
    }

    // MARK: Reading

    /// A HEADERS frame: the request's head, or its trailers (which end it).
    mutating func headersReceived(_ headers: HPACKHeaders, endStream: Bool) -> Action {
        guard case .reading = state else { return .none }
        guard reader.isIdle else {
            // Trailers: the request ends here; the gateway passes no trailers on.
            do {
                try HTTP2FieldRules.check(trailers: headers)
            } catch {
                state = .answered
                return .resetMalformed(error)
            }
            return endStream ? receive(.end(nil)) : .none
        }
        let head: HTTPRequestHead
        do {
            head = try Self.requestHead(headers)
        } catch .malformed(let violation) {
            state = .answered
            return .resetMalformed(violation)
        } catch {
            state = .answered
            let answer = RequestProcessor.Answer.rejected(status: 400, code: "MalformedRequest", message: "the stream's headers are not a valid request: \(error)")
            return .answerEarly(answer, Self.placeholderHead(headers), closure: nil)
        }
        let first = receive(.head(head))
        guard endStream else { return first }
        switch first {
        case .none, .writeContinue: return receive(.end(nil))  // no body to wait for a go-ahead
        default: return first
        }
    }

    /// A DATA frame: part of the body, and with `endStream` its end.
    mutating func dataReceived(_ data: ByteBuffer, endStream: Bool) -> Action {
        guard case .reading = state else { return .none }
        let first = data.readableBytes > 0 ? receive(.body(data)) : .none
        guard endStream else { return first }
        if case .none = first { return receive(.end(nil)) }
        return first
    }

    /// A head was accepted and its body is still arriving.
    var isReadingBody: Bool {
        guard case .reading = state else { return false }
        return reader.isReadingBody
    }

    /// The end of a read: a body still arriving keeps the body timer.
    func readComplete() -> Action {
        isReadingBody ? .touchBodyTimer : .none
    }

    /// The body paused for longer than the body timeout.
    mutating func bodyTimerFired() -> Action {
        guard case .reading = state, reader.isReadingBody, case .reading(let head, _, _) = reader.state else { return .none }
        state = .answered
        let answer = RequestProcessor.Answer.rejected(status: 408, code: "RequestTimeout", message: "the request body paused for longer than the body timeout")
        return .answerEarly(answer, head, closure: .clientBodyTimeout)
    }

    private mutating func receive(_ part: HTTPServerRequestPart) -> Action {
        switch reader.receive(part, admit: admit) {
        case .none:
            return .none
        case .sendContinue:
            return .writeContinue
        case .refuse(let answer, let head):
            state = .answered
            return .answerEarly(answer, head, closure: nil)
        case .process(let head, let request, _):
            if budgetIsSpent() {
                state = .answered
                return .refuseStream
            }
            state = .processing(head)
            return .startProcessing(head, request)
        }
    }

    // MARK: Answering

    /// The request's answer is ready.
    mutating func answerReady(_ processed: RequestProcessor.Processed) -> Action {
        guard case .processing(let head) = state else { return .dropAnswer(processed) }
        state = processed.stream == nil ? .answered : .relaying
        return .writeAnswer(processed, head)
    }

    /// A streamed answer's body ended (completed or broke off).
    mutating func relayEnded() {
        if case .relaying = state { state = .answered }
    }

    /// The stream closed: the client reset it, or the connection went away.
    mutating func streamClosed() -> Action {
        let previous = state
        state = .closed
        switch previous {
        case .processing: return .cancelProcessing
        case .relaying: return .abandonRelay
        case .reading, .answered, .closed: return .none
        }
    }

    /// The head of the request being read, once it came.
    var requestHead: HTTPRequestHead? { reader.head }

    /// Whether an answer started, so frames that arrive now are dropped.
    var isAnswering: Bool {
        switch state {
        case .reading: return false
        case .processing, .relaying, .answered, .closed: return true
        }
    }

    // MARK: The head

    enum HeadError: Error, CustomStringConvertible {
        /// The block breaks RFC 9113's rules (`HTTP2FieldRules`): a malformed request.
        case malformed(HTTP2FieldRules.Violation)
        case missingAuthority

        var description: String {
            switch self {
            case .malformed(let violation): violation.description
            case .missingAuthority: "the request has no :authority"
            }
        }
    }

    /// The request head of a header block, checked against RFC 9113's rules as it is read
    /// (`HTTP2FieldRules`). The `:authority` becomes the `host` field, as HTTP/1.1 carries it,
    /// unless a `host` is there too.
    static func requestHead(_ headers: HPACKHeaders) throws(HeadError) -> HTTPRequestHead {
        var method: String?
        var path: String?
        var authority: String?
        var seen: HTTP2FieldRules.Pseudo = []
        var fields: [(String, String)] = []
        fields.reserveCapacity(headers.count)
        var hasHost = false
        do throws(HTTP2FieldRules.Violation) {
            for (name, value, _) in headers {
                if name.utf8.first == UInt8(ascii: ":") {
                    guard fields.isEmpty else { throw HTTP2FieldRules.Violation(description: "the pseudo-header \(LogSafe.text(name)) follows other fields") }
                    let pseudo = try HTTP2FieldRules.pseudo(name)
                    guard !seen.contains(pseudo) else { throw HTTP2FieldRules.Violation(description: "\(name) appears twice") }
                    seen.insert(pseudo)
                    try HTTP2FieldRules.checkPseudoValue(value, of: name)
                    switch pseudo {
                    case .method: method = value
                    case .path:
                        guard !value.isEmpty else { throw HTTP2FieldRules.Violation(description: ":path is empty") }
                        path = value
                    case .authority: authority = value
                    default: break
                    }
                } else {
                    try HTTP2FieldRules.check(field: name, value: value)
                    if !hasHost && name == "host" { hasHost = true }
                    fields.append((name, value))
                }
            }
            try HTTP2FieldRules.check(pseudoHeaders: seen, method: method)
        } catch {
            throw .malformed(error)
        }
        guard let authority else { throw .missingAuthority }
        if !hasHost { fields.insert(("host", authority), at: 0) }
        return HTTPRequestHead(version: .http2, method: HTTPMethod(rawValue: method ?? "GET"), uri: path ?? "/", headers: HTTPHeaders(fields))
    }
}

import LambdaPayload
import NIOCore
import NIOHTTP1

/// Reads one request part by part, for an HTTP/1.1 connection and for each HTTP/2 stream alike:
/// the checks that need only the head (docs/ARCHITECTURE.md, HTTP/1.x and HTTP/2), and the body bounded by the Lambda
/// limit. Pure bookkeeping; the handlers carry out what it returns.
struct RequestReader {
    enum State {
        case idle
        /// A head accepted, with what its fields say (read once, `HeadFields`), and its body so far.
        case reading(HTTPRequestHead, HeadFields, ByteBuffer)
        /// Refused before its end: the rest of it is read and dropped.
        case discarding(HTTPRequestHead)
    }

    enum Action {
        /// Nothing to do yet (more parts to come, or parts of a refused request).
        case none
        /// Answer now, before the request is complete, and close the connection after the answer:
        /// the client may still be sending a body (and after a CONNECT the parser parses nothing more).
        case refuse(RequestProcessor.Answer, HTTPRequestHead)
        /// `Expect: 100-continue` passed the head's checks: send the go-ahead.
        case sendContinue(HTTPRequestHead)
        /// The request is complete. `endsConnection`: an HTTP/1.x connection closes after its
        /// answer (`HeadFields.endsConnection`).
        case process(HTTPRequestHead, GatewayRequest, endsConnection: Bool)
    }

    /// Envoy's defaults: 60 KiB of request headers in all, at most 100 fields. HTTP/1.1's parser
    /// enforces them (`HTTP1RequestParser`; the connection answers 431); HTTP/2 bounds only the
    /// total, so the field count is checked here.
    static let limits: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 60 * 1024
        limits.maxHeaderListSize = 60 * 1024
        limits.maxHeaderFieldCount = 100
        return limits
    }()

    private(set) var state = State.idle
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// The head of the request being read, once it came.
    var head: HTTPRequestHead? {
        switch state {
        case .idle: return nil
        case .reading(let head, _, _), .discarding(let head): return head
        }
    }

    /// A head was accepted and its body is still arriving.
    var isReadingBody: Bool {
        if case .reading = state { return true }
        return false
    }

    /// The refusal, if any, of the checks that need only a head (`RequestProcessor.admit`), given
    /// the head and its fields (values trimmed, `HeadFields.fields`).
    typealias Admit = (HTTPRequestHead, [HTTPField]) -> RequestProcessor.Answer?

    /// `processor`'s head checks, as `receive(_:admit:)` asks them.
    static func refusal(by processor: RequestProcessor, of head: HTTPRequestHead, fields: [HTTPField], on connection: ClientConnection) -> RequestProcessor.Answer? {
        if case .refused(let answer) = processor.admit(method: head.method.rawValue, target: head.uri, headers: fields, connection: connection) {
            return answer
        }
        return nil
    }

    mutating func receive(_ part: HTTPServerRequestPart, processor: RequestProcessor, connection: ClientConnection) -> Action {
        receive(part) { Self.refusal(by: processor, of: $0, fields: $1, on: connection) }
    }

    /// `admit` is asked only for a head that waits for a go-ahead (`Expect: 100-continue`); taking it
    /// as a function keeps the connection's state machine free of the processor.
    mutating func receive(_ part: HTTPServerRequestPart, admit: Admit) -> Action {
        switch (part, state) {
        case (.head(let head), .idle):
            let fields = HeadFields(head)
            if let refusal = Self.refusal(of: head, fields: fields, limit: limit) {
                state = .discarding(head)
                return .refuse(refusal, head)
            }
            state = .reading(head, fields, ByteBuffer())
            if fields.expectsContinue {
                // The client waits for a go-ahead before sending the body: give it only once the
                // head passes the checks that do not need the body.
                if let answer = admit(head, fields.fields) {
                    state = .discarding(head)
                    return .refuse(answer, head)
                }
                return .sendContinue(head)
            }
            return .none
        case (.body(var chunk), .reading(let head, let fields, var body)):
            if body.readableBytes + chunk.readableBytes > limit {
                state = .discarding(head)
                return .refuse(.rejected(status: 413, code: "RequestTooLarge", message: "the request body is over the \(limit)-byte limit"), head)
            }
            state = .idle  // drop the reference while appending, to avoid a copy
            if body.readableBytes == 0 {
                body = chunk
            } else {
                body.writeBuffer(&chunk)
            }
            state = .reading(head, fields, body)
            return .none
        case (.end, .reading(let head, let fields, let body)):
            state = .idle
            let request = GatewayRequest(
                method: head.method.rawValue,
                target: head.uri,
                headers: fields.fields,
                body: body,
                protocolName: Self.protocolName(head.version)
            )
            return .process(head, request, endsConnection: fields.endsConnection)
        case (.end, .discarding):
            state = .idle
            return .none
        case (.body, .discarding), (.end, .idle), (.body, .idle), (.head, .reading), (.head, .discarding):
            return .none
        }
    }

    /// What the head alone refuses: anything a proxy behind the gateway, the function, or the
    /// intentions might read differently from the gateway is refused here, before any check.
    static func refusal(of head: HTTPRequestHead, fields: HeadFields, limit: Int) -> RequestProcessor.Answer? {
        if head.method == .CONNECT {
            return .rejected(status: 405, code: "MethodNotAllowed", message: "CONNECT is not supported")
        }
        // A fragment is never sent by a client (RFC 9110 §7.1); let through, `/admin#x` would be
        // matched by intentions as a path other than `/admin`.
        if head.uri.utf8.contains(UInt8(ascii: "#")) {
            return .rejected(status: 400, code: "InvalidRequestTarget", message: "the request target has a fragment (#)")
        }
        let hosts = fields.hosts
        if hosts > 1 {
            // Two authorities: which one intentions, the function and any proxy behind it use
            // would be anybody's guess (HTTP/2 too: NIO keeps every host field it is given).
            return .rejected(status: 400, code: "DuplicateHost", message: "the request has more than one Host header")
        }
        if head.version.major == 1 {
            if head.version.minor >= 1 && hosts == 0 {
                return .rejected(status: 400, code: "MissingHost", message: "HTTP/1.1 requests need a Host header")
            }
            // HTTP/1.0 has no chunked coding: a recipient that frames by it and one that does not
            // disagree about where the request ends (RFC 9112 §6.1).
            if head.version.minor == 0 && fields.transferEncoding {
                return .rejected(status: 400, code: "InvalidTransferEncoding", message: "Transfer-Encoding is not allowed in an HTTP/1.0 request")
            }
        }
        if head.version.major == 2 {
            if head.headers.count > Self.limits.maxHeaderFieldCount {
                // HTTP/1.1's decoder counts fields itself; HTTP/2 bounds only their total size.
                return .rejected(status: 431, code: "RequestHeaderFieldsTooLarge", message: "more than \(Self.limits.maxHeaderFieldCount) request header fields")
            }
            // RFC 9113 §8.2.1: a value with leading or trailing whitespace makes the request
            // malformed (HTTP/1.1's parser strips it instead: see `fields`).
            if let field = head.headers.first(where: { Self.hasSurroundingWhitespace($0.value) }) {
                return .rejected(status: 400, code: "MalformedHeader", message: "the value of \(LogSafe.text(field.name, limit: 64)) has leading or trailing whitespace")
            }
        }
        if let length = fields.contentLength.flatMap(Int.init), length > limit {
            // Over the limit: answer at once, without reading the body (docs/DECISIONS.md D13).
            return .rejected(status: 413, code: "RequestTooLarge", message: "the request body is over the \(limit)-byte limit")
        }
        return nil
    }

    /// `HTTP/<major>.<minor>`: the payload's protocol (`HTTP/2.0` for an HTTP/2 stream's head).
    /// Literals for the versions the gateway speaks; the interpolation cost some 700 instructions
    /// a request.
    static func protocolName(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 1): "HTTP/1.1"
        case (1, 0): "HTTP/1.0"
        case (2, 0): "HTTP/2.0"
        default: "HTTP/\(version.major).\(version.minor)"
        }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    static func hasSurroundingWhitespace(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard let first = utf8.first, let last = utf8.last else { return false }
        return isWhitespace(first) || isWhitespace(last)
    }

    static func trimmingWhitespace(_ value: String) -> String {
        let utf8 = value.utf8
        guard let start = utf8.firstIndex(where: { !isWhitespace($0) }), let end = utf8.lastIndex(where: { !isWhitespace($0) }) else { return "" }
        return String(Substring(utf8[start...end]))
    }
}

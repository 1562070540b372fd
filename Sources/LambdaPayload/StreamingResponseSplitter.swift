import NIOCore

/// The start of a streamed answer (`InvokeWithResponseStream`), in the shape Lambda function URLs
/// give streamed responses: a JSON prelude (`statusCode`, `headers`, `multiValueHeaders`,
/// `cookies`), 8 NUL bytes, then the body. The prelude is read when the stream's content type is
/// `application/vnd.awslambda.http-integration-response`, or when the function's bytes begin with a
/// JSON object followed by the 8 NULs; anything else is a 200 whose body is all the bytes, with the
/// function's content type or `application/octet-stream`. The prelude, its NULs and the body may
/// arrive in any pieces. The buffered path's header rules apply to the prelude (no 1xx, no
/// hop-by-hop fields, no `content-length`, no CR/LF in a value).
///
/// Feed each payload chunk to `append`, then call `finish` when the stream completes. The head
/// comes first, once; body pieces follow as they arrive. Only the prelude is ever held (at most
/// `maximumPreludeBytes`): once the head is out, chunks pass through.
public struct StreamingResponseSplitter {
    public enum Event: Equatable {
        /// The response head (its `body` empty).
        case head(LambdaHTTPResponse)
        case body(ByteBuffer)
    }

    /// The content type that says the stream starts with a prelude.
    public static let integrationContentType = "application/vnd.awslambda.http-integration-response"
    /// AWS's event-stream framing: the envelope, never the function's own content type.
    static let eventStreamContentType = "application/vnd.amazon.eventstream"
    static let delimiter = [UInt8](repeating: 0, count: 8)

    private enum State {
        /// The head is not out yet: the bytes so far.
        case deciding(ByteBuffer)
        case streaming
    }

    private var state = State.deciding(ByteBuffer())
    private let preludeRequired: Bool
    private let plainContentType: String
    public let maximumPreludeBytes: Int

    /// `contentType`: the streamed answer's content type, when Lambda gave one.
    public init(contentType: String?, maximumPreludeBytes: Int = ResponseDecoder.defaultMaximumHeaderBytes) {
        let type = contentType.map { $0.split(separator: ";").first.map(String.init) ?? $0 }?.trimmingASCIIWhitespace().asciiLowercased
        preludeRequired = type == Self.integrationContentType
        if let contentType, let type, type != Self.integrationContentType, type != Self.eventStreamContentType, !type.isEmpty {
            plainContentType = contentType
        } else {
            plainContentType = "application/octet-stream"
        }
        self.maximumPreludeBytes = maximumPreludeBytes
    }

    /// A chunk of the function's bytes.
    public mutating func append(_ chunk: ByteBuffer) throws(PayloadError) -> [Event] {
        switch state {
        case .streaming:
            return chunk.readableBytes > 0 ? [.body(chunk)] : []
        case .deciding(var pending):
            state = .streaming  // out of the enum while it grows (no copy)
            var chunk = chunk
            pending.writeBuffer(&chunk)
            if let events = try decide(pending, final: false) { return events }
            state = .deciding(pending)
            return []
        }
    }

    /// The stream completed: a head not yet decided is decided now.
    public mutating func finish() throws(PayloadError) -> [Event] {
        guard case .deciding(let pending) = state else { return [] }
        state = .streaming
        return try decide(pending, final: true) ?? []
    }

    /// The events once the bytes so far decide the head, or nil to wait for more.
    private func decide(_ pending: ByteBuffer, final: Bool) throws(PayloadError) -> [Event]? {
        let bytes = pending.readableBytesView
        if preludeRequired {
            if let end = Self.delimiterStart(in: bytes) {
                return try Self.events(prelude: pending, end: end)
            }
            guard bytes.count <= maximumPreludeBytes + Self.delimiter.count else {
                throw PayloadError(.invalidFunctionResponse, "the streamed response's prelude is over \(maximumPreludeBytes) bytes or has no end")
            }
            if final { throw PayloadError(.invalidFunctionResponse, "the streamed response ended inside its prelude") }
            return nil
        }
        switch Self.objectEnd(in: bytes) {
        case .notAnObject:
            return plain(pending)
        case .incomplete:
            if final || bytes.count > maximumPreludeBytes { return plain(pending) }
            return nil
        case .endsAt(let end):
            let after = bytes[end...].prefix(Self.delimiter.count)
            guard after.allSatisfy({ $0 == 0 }) else { return plain(pending) }
            guard after.count == Self.delimiter.count else { return final ? plain(pending) : nil }
            return try Self.events(prelude: pending, end: end)
        }
    }

    /// No prelude: a 200 whose body is every byte.
    private func plain(_ pending: ByteBuffer) -> [Event] {
        let head = Event.head(LambdaHTTPResponse(status: 200, headers: [HTTPField("content-type", plainContentType)]))
        return pending.readableBytes > 0 ? [head, .body(pending)] : [head]
    }

    /// The prelude's head, and the bytes after its NULs as the first body piece.
    private static func events(prelude pending: ByteBuffer, end: ByteBufferView.Index) throws(PayloadError) -> [Event] {
        let start = pending.readerIndex
        let preludeLength = end - start
        let value: JSONValue
        do {
            value = try pending.getSlice(at: start, length: preludeLength)!.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
        } catch {
            throw PayloadError(.invalidFunctionResponse, "the streamed response's prelude is not JSON: \(error)")
        }
        guard case .object = value else { throw PayloadError(.invalidFunctionResponse, "the streamed response's prelude is not a JSON object") }
        var headers = ResponseHeaders()
        if let single = value["headers"] { try headers.addSingleValued(single) }
        if let multi = value["multiValueHeaders"] { try headers.addMultiValued(multi) }
        if case .array(let cookies)? = value["cookies"] {
            for case .string(let cookie) in cookies where ResponseHeaders.isValidValue(cookie) { headers.append("set-cookie", cookie) }
        }
        if !headers.contains("content-type") { headers.insertFirst("content-type", "application/octet-stream") }
        let head = LambdaHTTPResponse(status: try ResponseDecoder.statusCode(value["statusCode"]), headers: headers.fields)
        let bodyStart = preludeLength + delimiter.count
        let rest = pending.getSlice(at: start + bodyStart, length: pending.readableBytes - bodyStart)!
        return rest.readableBytes > 0 ? [.head(head), .body(rest)] : [.head(head)]
    }

    /// Where the first run of 8 NULs starts.
    static func delimiterStart(in bytes: ByteBufferView) -> ByteBufferView.Index? {
        var run = 0
        for index in bytes.indices {
            run = bytes[index] == 0 ? run + 1 : 0
            if run == delimiter.count { return index - (delimiter.count - 1) }
        }
        return nil
    }

    enum ObjectEnd: Equatable {
        case notAnObject
        case incomplete
        /// The index just after the object's closing brace.
        case endsAt(ByteBufferView.Index)
    }

    /// Whether the bytes begin (after whitespace) with a JSON object, and where it ends: braces
    /// counted outside strings, escapes skipped. The object's content is checked by the parser.
    static func objectEnd(in bytes: ByteBufferView) -> ObjectEnd {
        var index = bytes.startIndex
        while index < bytes.endIndex, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        guard index < bytes.endIndex else { return .incomplete }
        guard bytes[index] == UInt8(ascii: "{") else { return .notAnObject }
        var depth = 0
        var inString = false
        var escaped = false
        while index < bytes.endIndex {
            let byte = bytes[index]
            index += 1
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return .endsAt(index) }
            default: break
            }
        }
        return .incomplete
    }
}

import NIOCore

/// The start of a streamed answer (`InvokeWithResponseStream`), in the shape Lambda function URLs
/// give streamed responses: a JSON prelude (`statusCode`, `headers`, `multiValueHeaders`,
/// `cookies`), 8 NUL bytes, then the body. The prelude is read when the stream's content type is
/// `application/vnd.awslambda.http-integration-response`; with no content type (or
/// `application/octet-stream`), when the function's bytes begin with a JSON object followed by the
/// 8 NULs and the object is a prelude. Anything else is a 200 whose body is all the bytes, with
/// the function's content type or `application/octet-stream`: a stream that names its own type
/// (`text/event-stream`, `application/json`) is never held to look for a prelude. The prelude, its
/// NULs and the body may arrive in any pieces. The buffered path's header rules apply to the
/// prelude (no 1xx, no hop-by-hop fields, no `content-length`, no CR/LF in a value, the header
/// bytes limit).
///
/// Feed each payload chunk to `append`, then call `finish` when the stream completes. The head
/// comes first, once; body pieces follow as they arrive. Only the prelude is ever held (at most
/// `maximumPreludeBytes` and its NULs), each byte scanned once; once the head is out, chunks pass
/// through. After an error every call throws it again.
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
    static let delimiterLength = 8

    private enum State {
        /// The head is not out yet: the bytes so far, and how far they are scanned.
        case deciding(ByteBuffer, PreludeScanner)
        case streaming
        case failed(PayloadError)
    }

    /// How a stream's start is read.
    private enum Mode {
        /// The content type says there is a prelude.
        case prelude
        /// No content type: a prelude if the bytes begin with one.
        case sniff
        /// A content type of the function's own: no prelude.
        case plain
    }

    private var state: State
    private let mode: Mode
    private let plainContentType: String
    public let maximumPreludeBytes: Int

    /// `contentType`: the streamed answer's content type, when Lambda gave one.
    public init(contentType: String?, maximumPreludeBytes: Int = ResponseDecoder.defaultMaximumHeaderBytes) {
        let type = contentType.map { $0.split(separator: ";").first.map(String.init) ?? $0 }?.trimmingASCIIWhitespace().asciiLowercased
        switch type {
        case Self.integrationContentType?:
            mode = .prelude
            plainContentType = "application/octet-stream"
        case nil, ""?, Self.eventStreamContentType?, "application/octet-stream"?:
            mode = .sniff
            plainContentType = "application/octet-stream"
        default:
            mode = .plain
            plainContentType = contentType ?? "application/octet-stream"
        }
        self.maximumPreludeBytes = maximumPreludeBytes
        state = .deciding(ByteBuffer(), PreludeScanner())
    }

    /// A chunk of the function's bytes.
    public mutating func append(_ chunk: ByteBuffer) throws(PayloadError) -> [Event] {
        switch state {
        case .failed(let error):
            throw error
        case .streaming:
            return chunk.readableBytes > 0 ? [.body(chunk)] : []
        case .deciding(var pending, var scanner):
            state = .streaming  // out of the enum while it grows (no copy)
            var chunk = chunk
            pending.writeBuffer(&chunk)
            do {
                if let events = try decide(pending, scanner: &scanner, final: false) { return events }
            } catch {
                state = .failed(error)
                throw error
            }
            state = .deciding(pending, scanner)
            return []
        }
    }

    /// The stream completed: a head not yet decided is decided now.
    public mutating func finish() throws(PayloadError) -> [Event] {
        switch state {
        case .failed(let error):
            throw error
        case .streaming:
            return []
        case .deciding(let pending, var scanner):
            state = .streaming
            do {
                return try decide(pending, scanner: &scanner, final: true) ?? []
            } catch {
                state = .failed(error)
                throw error
            }
        }
    }

    /// The events once the bytes so far decide the head, or nil to wait for more.
    private func decide(_ pending: ByteBuffer, scanner: inout PreludeScanner, final: Bool) throws(PayloadError) -> [Event]? {
        let bytes = pending.readableBytesView
        switch mode {
        case .plain:
            return plain(pending)
        case .prelude:
            if let length = scanner.delimiterStart(in: bytes) {
                return try events(prelude: pending, length: length)
            }
            guard bytes.count <= maximumPreludeBytes + Self.delimiterLength else {
                throw PayloadError(.invalidFunctionResponse, "the streamed response's prelude is over \(maximumPreludeBytes) bytes or has no end")
            }
            if final { throw PayloadError(.invalidFunctionResponse, "the streamed response ended inside its prelude") }
            return nil
        case .sniff:
            switch scanner.objectEnd(in: bytes) {
            case .notAnObject:
                return plain(pending)
            case .incomplete:
                return final || bytes.count > maximumPreludeBytes ? plain(pending) : nil
            case .endsAt(let length):
                let after = bytes.dropFirst(length).prefix(Self.delimiterLength)
                guard length <= maximumPreludeBytes, after.allSatisfy({ $0 == 0 }) else { return plain(pending) }
                guard after.count == Self.delimiterLength else { return final ? plain(pending) : nil }
                // A JSON object and 8 NULs: the head if the object reads as a prelude; if it does
                // not, the function did not mean one, and every byte is the body.
                return (try? events(prelude: pending, length: length)) ?? plain(pending)
            }
        }
    }

    /// No prelude: a 200 whose body is every byte.
    private func plain(_ pending: ByteBuffer) -> [Event] {
        let head = Event.head(LambdaHTTPResponse(status: 200, headers: [HTTPField("content-type", plainContentType)]))
        return pending.readableBytes > 0 ? [head, .body(pending)] : [head]
    }

    /// The head from the prelude (the first `length` bytes), and the bytes after its NULs as the
    /// first body piece.
    private func events(prelude pending: ByteBuffer, length: Int) throws(PayloadError) -> [Event] {
        guard length <= maximumPreludeBytes else {
            throw PayloadError(.invalidFunctionResponse, "the streamed response's prelude is over \(maximumPreludeBytes) bytes or has no end")
        }
        let value: JSONValue
        do {
            value = try pending.getSlice(at: pending.readerIndex, length: length)!.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
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
        let bodyStart = length + Self.delimiterLength
        let rest = pending.getSlice(at: pending.readerIndex + bodyStart, length: pending.readableBytes - bodyStart)!
        return rest.readableBytes > 0 ? [.head(head), .body(rest)] : [.head(head)]
    }
}

/// Where a stream's prelude ends, read incrementally: each byte is looked at once, however the
/// stream is cut (offsets are from the start of the stream).
struct PreludeScanner {
    enum ObjectEnd: Equatable {
        case notAnObject
        case incomplete
        /// The object's length, up to and with its closing brace.
        case endsAt(Int)
    }

    private var scanned = 0
    private var nulRun = 0
    private var opened = false
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var end: ObjectEnd = .incomplete

    /// Where the first run of 8 NULs starts, if the bytes so far hold one.
    mutating func delimiterStart(in bytes: ByteBufferView) -> Int? {
        while scanned < bytes.count {
            nulRun = bytes[bytes.startIndex + scanned] == 0 ? nulRun + 1 : 0
            scanned += 1
            if nulRun == StreamingResponseSplitter.delimiterLength { return scanned - nulRun }
        }
        return nil
    }

    /// Whether the bytes begin (after whitespace) with a JSON object, and where it ends: braces
    /// and brackets counted outside strings, escapes skipped. The parser checks the content.
    mutating func objectEnd(in bytes: ByteBufferView) -> ObjectEnd {
        while end == .incomplete, scanned < bytes.count {
            let byte = bytes[bytes.startIndex + scanned]
            scanned += 1
            if !opened {
                if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { continue }
                guard byte == UInt8(ascii: "{") else {
                    end = .notAnObject
                    break
                }
                opened = true
                depth = 1
                continue
            }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { end = .endsAt(scanned) }
            default: break
            }
        }
        return end
    }
}

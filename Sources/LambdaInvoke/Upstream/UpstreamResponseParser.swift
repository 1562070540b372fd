import LambdaPayload
import NIOCore
import NIOHTTP1

/// Reads the endpoint's HTTP/1.1 answers from a connection's bytes (RFC 9112), one event at a time:
/// the head, pieces of the body, the end. It takes the place of NIO's response decoder (llhttp
/// behind a `ByteToMessageHandler`), a handler and a callback per header on every Invoke call.
///
/// It is strict where leniency could frame an answer two ways (request smuggling's cousin,
/// response splitting): every line ends in CRLF, no folded lines, no space before a colon, field
/// names are tokens, values hold no control bytes, `Content-Length` and `Transfer-Encoding`
/// never both, `Transfer-Encoding` only `chunked`, lengths without sign or overflow. Anything
/// else is an `Error` that says what was wrong; the connection is then unusable.
///
/// A body is framed by `Transfer-Encoding: chunked`, by `Content-Length`, or by the end of the
/// connection (`inputEnded()`). The answers to HEAD, 1xx, 204 and 304 have none. Interim (1xx)
/// answers are skipped; 101 is refused, since nothing asks for an upgrade.
struct UpstreamResponseParser {
    typealias Error = HTTP1Syntax.Error

    struct Head {
        var status: Int
        var headers: UpstreamHeaders
        /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `keep-alive`, and framed by more
        /// than the connection's end.
        var keepAlive: Bool
        /// The `Content-Length`, when the body is framed by one.
        var contentLength: Int?
    }

    enum Event {
        case head(Head)
        /// A piece of the body: a slice of the bytes read, not a copy.
        case body(ByteBuffer)
        case end
    }

    enum State {
        /// Waiting for a status line (also after an interim answer).
        case head
        case body(HTTP1BodyReader)
        /// An error was thrown; nothing more is read.
        case failed
    }

    private(set) var state: State = .head
    /// The answer being read is to a HEAD request: its head is all of it.
    var answersHEAD = false
    private var search = HTTP1Syntax.HeadSearch()

    /// A head (status line and fields) may be this long, as NIO's decoder allows (llhttp's 80 KiB);
    /// so may a trailer section.
    static let maximumHeadBytes = 80 * 1024
    static let maximumChunkLineBytes = HTTP1BodyReader.maximumChunkLineBytes

    /// The next event from `buffer`, whose bytes it consumes; nil when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws(Error) -> Event? {
        do {
            while true {
                switch state {
                case .head:
                    guard let head = try readHead(&buffer) else { return nil }
                    // nil: an interim answer, skipped.
                    if let head { return .head(head) }
                case .body(var reader):
                    let event = try reader.next(&buffer)
                    state = reader.isEnded ? .head : .body(reader)
                    switch event {
                    case .body(let bytes): return .body(bytes)
                    case .end: return .end
                    case nil: return nil
                    }
                case .failed:
                    return nil
                }
            }
        } catch {
            state = .failed
            throw error
        }
    }

    /// The connection's input ended with `buffer` left unread: the end of a body framed by it, nil
    /// between answers, or the error of an answer cut short.
    mutating func inputEnded(_ buffer: ByteBuffer) throws(Error) -> Event? {
        switch state {
        case .head where buffer.readableBytes == 0, .failed:
            return nil
        case .body(var reader):
            if case .end? = try? reader.inputEnded() {
                state = .head
                return .end
            }
        case .head:
            break
        }
        state = .failed
        throw Error("the connection ended in the middle of an answer")
    }

    /// Reads a whole head when it is there: `.some(head)` for a final answer, `.some(nil)` for an
    /// interim one (skipped), nil while it is incomplete.
    private mutating func readHead(_ buffer: inout ByteBuffer) throws(Error) -> Head?? {
        guard let length = try search.headLength(buffer, limit: Self.maximumHeadBytes) else { return nil }
        let parsed = try buffer.withUnsafeReadableBytes { bytes throws(Error) in
            try Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[..<length]))
        }
        var head = Head(
            status: parsed.status, headers: UpstreamHeaders(head: buffer.readSlice(length: length)!, fields: parsed.fields), keepAlive: parsed.keepAlive,
            contentLength: parsed.contentLength)
        switch head.status {
        case 101:
            throw Error("101 Switching Protocols, though no upgrade was asked for")
        case 100..<200:
            return .some(nil)
        default:
            break
        }
        let framing: HTTP1BodyReader.Framing
        if answersHEAD || head.status == 204 || head.status == 304 {
            head.contentLength = nil
            framing = .none
        } else if parsed.chunked {
            head.contentLength = nil
            framing = .chunked
        } else if let length = head.contentLength {
            framing = .length(length)
        } else {
            head.keepAlive = false
            framing = .untilClose
        }
        state = .body(HTTP1BodyReader(framing, maximumTrailerBytes: Self.maximumHeadBytes))
        return .some(head)
    }

    struct ParsedHead {
        var status: Int
        /// Where each field is in the head's bytes (`UpstreamHeaders`).
        var fields: [UpstreamHeaders.Field]
        var keepAlive: Bool
        var contentLength: Int?
        var chunked: Bool
    }

    /// A complete head, its empty line included.
    static func parseHead(_ bytes: UnsafeRawBufferPointer) throws(Error) -> ParsedHead {
        // The status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF.
        guard bytes.count >= 14, bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"), bytes[2] == UInt8(ascii: "T"), bytes[3] == UInt8(ascii: "P"),
            bytes[4] == UInt8(ascii: "/"), bytes[5] == UInt8(ascii: "1"), bytes[6] == UInt8(ascii: "."),
            bytes[7] == UInt8(ascii: "0") || bytes[7] == UInt8(ascii: "1"), bytes[8] == 0x20
        else { throw Error("the answer does not start with an HTTP/1.0 or HTTP/1.1 status line") }
        let http11 = bytes[7] == UInt8(ascii: "1")
        var status = 0
        for offset in 9..<12 {
            let byte = bytes[offset]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw Error("the status code is not three digits") }
            status = status * 10 + Int(byte - UInt8(ascii: "0"))
        }
        guard status >= 100 else { throw Error("the status code \(status) is under 100") }
        var index = 12
        if bytes[index] == 0x20 {
            index += 1
            while bytes[index] != 0x0D {
                guard HTTP1Syntax.isFieldValueByte(bytes[index]) else { throw Error("the reason phrase holds a control byte") }
                index += 1
            }
        }
        guard bytes[index] == 0x0D, bytes[index + 1] == 0x0A else { throw Error("the status code is followed by something other than a reason phrase") }

        var fields: [UpstreamHeaders.Field] = []
        fields.reserveCapacity(12)
        let start = bytes.baseAddress!
        var contentLength: Int?
        var chunked = false
        var close = false
        var keepAlive = false
        _ = try HTTP1Syntax.forEachField(in: bytes, from: index + 2) { name, value throws(Error) in
            switch name.count {
            case 14 where HTTP1Syntax.equalsLowercased(name, "content-length"):
                let length = try HTTP1Syntax.contentLength(value)
                if let contentLength, contentLength != length { throw Error("two different Content-Length values") }
                contentLength = length
            case 17 where HTTP1Syntax.equalsLowercased(name, "transfer-encoding"):
                guard !chunked, HTTP1Syntax.equalsLowercased(value, "chunked") else {
                    throw Error("Transfer-Encoding \"\(String(decoding: value, as: UTF8.self))\" is not the one coding this client reads, chunked")
                }
                chunked = true
            case 10 where HTTP1Syntax.equalsLowercased(name, "connection"):
                HTTP1Syntax.forEachToken(value) { token in
                    if HTTP1Syntax.equalsLowercased(token, "close") { close = true }
                    if HTTP1Syntax.equalsLowercased(token, "keep-alive") { keepAlive = true }
                }
            default:
                break
            }
            // Where the field is, not its strings (`UpstreamHeaders`).
            let nameStart = name.baseAddress.map { $0 - start } ?? 0
            let valueStart = value.baseAddress.map { $0 - start } ?? 0
            fields.append(UpstreamHeaders.Field(name: nameStart..<nameStart + name.count, value: valueStart..<valueStart + value.count))
        }
        if chunked {
            guard contentLength == nil else { throw Error("both Content-Length and Transfer-Encoding frame the answer") }
            guard http11 else { throw Error("Transfer-Encoding in an HTTP/1.0 answer") }
        }
        return ParsedHead(status: status, fields: fields, keepAlive: http11 ? !close : keepAlive && !close, contentLength: contentLength, chunked: chunked)
    }
}

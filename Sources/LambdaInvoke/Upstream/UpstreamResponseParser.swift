import LambdaPayload
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
    struct Head {
        var status: Int
        var headers: HTTPHeaders
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

    struct Error: Swift.Error, Equatable, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    enum State {
        /// Waiting for a status line (also after an interim answer).
        case head
        /// `remaining` bytes of a `Content-Length` body to come.
        case fixed(remaining: Int)
        /// A chunk's size line.
        case chunkSize
        /// `remaining` bytes of a chunk to come.
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data.
        case chunkEnd
        /// Trailer lines after the last chunk, up to an empty line; `bytes` read of them so far.
        case trailers(bytes: Int)
        /// The body ends with the connection.
        case untilClose
        /// The answer is complete: the next event is `.end`.
        case complete
        /// An error was thrown; nothing more is read.
        case failed
    }

    private(set) var state: State = .head
    /// The answer being read is to a HEAD request: its head is all of it.
    var answersHEAD = false
    /// How far the search for the end of a head has come (from the buffer's reader index), so that
    /// a head arriving in small pieces is not searched from its start each time.
    private var searched = 0

    /// A head (status line and fields) may be this long, as NIO's decoder allows (llhttp's 80 KiB).
    static let maximumHeadBytes = 80 * 1024
    /// A chunk's size line, extensions included, may be this long.
    static let maximumChunkLineBytes = 4096

    /// The next event from `buffer`, whose bytes it consumes; nil when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws(Error) -> Event? {
        do {
            return try step(&buffer)
        } catch {
            state = .failed
            throw error
        }
    }

    /// The connection's input ended with `buffer` left unread: the end of a body framed by it, nil
    /// between answers, or the error of an answer cut short.
    mutating func inputEnded(_ buffer: ByteBuffer) throws(Error) -> Event? {
        switch state {
        case .untilClose, .complete:
            state = .head
            return .end
        case .head where buffer.readableBytes == 0:
            return nil
        case .failed:
            return nil
        case .head, .fixed, .chunkSize, .chunkData, .chunkEnd, .trailers:
            state = .failed
            throw Error("the connection ended in the middle of an answer")
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(Error) -> Event? {
        while true {
            switch state {
            case .head:
                guard let head = try readHead(&buffer) else { return nil }
                // nil: an interim answer, skipped.
                if let head { return .head(head) }
            case .fixed(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                state = count == remaining ? .complete : .fixed(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .chunkSize:
                guard let line = try readLine(&buffer, limit: Self.maximumChunkLineBytes, what: "chunk size line") else { return nil }
                let size = try Self.chunkSize(line)
                state = size == 0 ? .trailers(bytes: 0) : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                state = count == remaining ? .chunkEnd : .chunkData(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)
            case .chunkEnd:
                guard buffer.readableBytes >= 2 else { return nil }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw Error("a chunk's data is not followed by CRLF") }
                state = .chunkSize
            case .trailers(let bytes):
                let limit = Self.maximumHeadBytes - bytes
                guard limit > 0 else { throw Error("the trailer section is over \(Self.maximumHeadBytes) bytes") }
                guard let line = try readLine(&buffer, limit: limit, what: "trailer section", reportedLimit: Self.maximumHeadBytes) else { return nil }
                if line.readableBytes == 0 {
                    state = .complete
                } else {
                    try line.withUnsafeReadableBytes { bytes throws(Error) in _ = try Self.field(bytes) }
                    state = .trailers(bytes: bytes + line.readableBytes + 2)
                }
            case .complete:
                state = .head
                return .end
            case .failed:
                return nil
            }
        }
    }

    // MARK: Lines

    /// The next line without its CRLF, or nil while it is incomplete. A bare LF, or a line longer
    /// than `limit`, is an error (which names `reportedLimit`, the limit of the whole `what`).
    private mutating func readLine(_ buffer: inout ByteBuffer, limit: Int, what: String, reportedLimit: Int? = nil) throws(Error) -> ByteBuffer? {
        let found = buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard let base = bytes.baseAddress, let lf = memchr(base, 0x0A, min(bytes.count, limit + 2)) else { return nil }
            return base.distance(to: UnsafeRawPointer(lf))
        }
        guard let lf = found else {
            if buffer.readableBytes >= limit + 2 { throw Error("the \(what) is over \(reportedLimit ?? limit) bytes") }
            return nil
        }
        guard lf > 0, buffer.getInteger(at: buffer.readerIndex + lf - 1, as: UInt8.self) == 0x0D else {
            throw Error("a line of the \(what) ends in a bare LF")
        }
        let line = buffer.readSlice(length: lf - 1)!
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// A chunk size: 1 to 15 hex digits, then optionally whitespace and extensions (`;...`), which
    /// are ignored but may hold no control bytes.
    static func chunkSize(_ line: ByteBuffer) throws(Error) -> Int {
        try line.withUnsafeReadableBytes { bytes throws(Error) in
            var size = 0
            var index = 0
            while index < bytes.count, let digit = hexValue(bytes[index]) {
                guard index < 15 else { throw Error("a chunk size has more than 15 hex digits") }
                size = size << 4 | digit
                index += 1
            }
            guard index > 0 else { throw Error("a chunk size line does not start with a hex number") }
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
            guard index == bytes.count || bytes[index] == UInt8(ascii: ";") else { throw Error("a chunk size is followed by something other than an extension") }
            for byte in bytes[index...] where !isFieldValueByte(byte) { throw Error("a chunk extension holds a control byte") }
            return size
        }
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    // MARK: The head

    /// Reads a whole head when it is there: `.some(head)` for a final answer, `.some(nil)` for an
    /// interim one (skipped), nil while it is incomplete.
    private mutating func readHead(_ buffer: inout ByteBuffer) throws(Error) -> Head?? {
        guard let length = try headLength(buffer) else { return nil }
        searched = 0
        let parsed = try buffer.withUnsafeReadableBytes { bytes throws(Error) in
            try Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[..<length]))
        }
        buffer.moveReaderIndex(forwardBy: length)
        var head = parsed.head
        switch head.status {
        case 101:
            throw Error("101 Switching Protocols, though no upgrade was asked for")
        case 100..<200:
            return .some(nil)
        default:
            break
        }
        if answersHEAD || head.status == 204 || head.status == 304 {
            head.contentLength = nil
            state = .complete
        } else if parsed.chunked {
            state = .chunkSize
            head.contentLength = nil
        } else if let length = head.contentLength {
            state = length == 0 ? .complete : .fixed(remaining: length)
        } else {
            state = .untilClose
            head.keepAlive = false
        }
        return .some(head)
    }

    /// The length of the head up to and including its empty line, or nil while it is incomplete.
    private mutating func headLength(_ buffer: ByteBuffer) throws(Error) -> Int? {
        let result: Int?? = buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress else { return .some(nil) }
            var from = searched
            while from < bytes.count {
                guard let lf = memchr(base + from, 0x0A, bytes.count - from) else {
                    from = bytes.count
                    break
                }
                let index = base.distance(to: UnsafeRawPointer(lf))
                // A bare LF is refused as the lines are read; here it only ends the search early.
                guard index > 0, bytes[index - 1] == 0x0D else { return nil }
                if index + 2 < bytes.count, bytes[index + 1] == 0x0D, bytes[index + 2] == 0x0A { return .some(index + 3) }
                if index + 2 >= bytes.count {
                    // The next line's first bytes are not all here yet: look at this LF again.
                    from = index
                    break
                }
                from = index + 1
            }
            searched = min(from, bytes.count)
            return .some(nil)
        }
        switch result {
        case .none:
            throw Error("a line of the head ends in a bare LF")
        case .some(let length?):
            guard length <= Self.maximumHeadBytes else { throw Error("the head is over \(Self.maximumHeadBytes) bytes") }
            return length
        case .some(nil):
            if buffer.readableBytes > Self.maximumHeadBytes { throw Error("the head is over \(Self.maximumHeadBytes) bytes") }
            return nil
        }
    }

    struct ParsedHead {
        var head: Head
        var chunked: Bool
    }

    /// A complete head, its empty line included.
    static func parseHead(_ bytes: UnsafeRawBufferPointer) throws(Error) -> ParsedHead {
        // The status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF.
        var index = 0
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
        index = 12
        if bytes[index] == 0x20 {
            index += 1
            while bytes[index] != 0x0D {
                guard isFieldValueByte(bytes[index]) else { throw Error("the reason phrase holds a control byte") }
                index += 1
            }
        }
        guard bytes[index] == 0x0D, bytes[index + 1] == 0x0A else { throw Error("the status code is followed by something other than a reason phrase") }
        index += 2

        var fields: [(String, String)] = []
        fields.reserveCapacity(12)
        var contentLength: Int?
        var chunked = false
        var transferEncoding = false
        var close = false
        var keepAlive = false
        // Field lines up to the empty line.
        while !(bytes[index] == 0x0D && bytes[index + 1] == 0x0A) {
            var end = index
            while bytes[end] != 0x0D { end += 1 }
            guard bytes[end + 1] == 0x0A else { throw Error("a field line holds a bare CR") }
            let line = UnsafeRawBufferPointer(rebasing: bytes[index..<end])
            let (nameLength, valueRange) = try field(line)
            let name = UnsafeRawBufferPointer(rebasing: line[..<nameLength])
            let value = UnsafeRawBufferPointer(rebasing: line[valueRange])
            switch nameLength {
            case 14 where equalsLowercased(name, "content-length"):
                let length = try Self.contentLength(value)
                if let contentLength, contentLength != length { throw Error("two different Content-Length values") }
                contentLength = length
            case 17 where equalsLowercased(name, "transfer-encoding"):
                guard !transferEncoding, equalsLowercased(value, "chunked") else {
                    throw Error("Transfer-Encoding \"\(String(decoding: value, as: UTF8.self))\" is not the one coding this client reads, chunked")
                }
                transferEncoding = true
                chunked = true
            case 10 where equalsLowercased(name, "connection"):
                forEachToken(value) { token in
                    if equalsLowercased(token, "close") { close = true }
                    if equalsLowercased(token, "keep-alive") { keepAlive = true }
                }
            default:
                break
            }
            fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
            index = end + 2
        }
        if chunked {
            guard contentLength == nil else { throw Error("both Content-Length and Transfer-Encoding frame the answer") }
            guard http11 else { throw Error("Transfer-Encoding in an HTTP/1.0 answer") }
        }
        let head = Head(status: status, headers: HTTPHeaders(fields), keepAlive: http11 ? !close : keepAlive && !close, contentLength: contentLength)
        return ParsedHead(head: head, chunked: chunked)
    }

    /// A field line: the name's length, and where the value is (without the whitespace around it).
    static func field(_ line: UnsafeRawBufferPointer) throws(Error) -> (nameLength: Int, value: Range<Int>) {
        var colon = 0
        while colon < line.count, line[colon] != UInt8(ascii: ":") {
            guard HTTPField.isTokenByte(line[colon]) else {
                if colon == 0, line[0] == 0x20 || line[0] == 0x09 { throw Error("a folded field line (obsolete line folding)") }
                throw Error("a field name holds a byte that is not a token character")
            }
            colon += 1
        }
        guard colon > 0, colon < line.count else { throw Error(colon == 0 ? "a field line without a name" : "a field line without a colon") }
        var start = colon + 1
        var end = line.count
        while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
        guard areFieldValueBytes(UnsafeRawBufferPointer(rebasing: line[start..<end])) else { throw Error("a field value holds a control byte") }
        return (colon, start..<end)
    }

    /// Content-Length: digits, or a list of the same digits (`5, 5`), as RFC 9110 §8.6 allows.
    static func contentLength(_ value: UnsafeRawBufferPointer) throws(Error) -> Int {
        var result: Int?
        var failure: Error?
        forEachToken(value) { token in
            guard failure == nil else { return }
            guard (1...18).contains(token.count), token.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                failure = Error("Content-Length \"\(String(decoding: value, as: UTF8.self))\" is not a number")
                return
            }
            let length = token.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            if let result, result != length { failure = Error("two different Content-Length values") }
            result = length
        }
        if let failure { throw failure }
        guard let result else { throw Error("an empty Content-Length") }
        return result
    }

    /// Each element of a comma-separated list, without the whitespace around it; empty elements skipped.
    static func forEachToken(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start < value.count {
            var end = start
            while end < value.count, value[end] != UInt8(ascii: ",") { end += 1 }
            var from = start
            var to = end
            while from < to, value[from] == 0x20 || value[from] == 0x09 { from += 1 }
            while to > from, value[to - 1] == 0x20 || value[to - 1] == 0x09 { to -= 1 }
            if from < to { body(UnsafeRawBufferPointer(rebasing: value[from..<to])) }
            start = end + 1
        }
    }

    /// Whether `bytes`, ASCII letters lower-cased, are `lowercase`.
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        for index in 0..<bytes.count {
            var byte = bytes[index]
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte |= 0x20 }
            if byte != expected[index] { return false }
        }
        return true
    }

    /// Whether every byte is a field value's: eight at a time, and byte by byte only in a word with
    /// a byte below SP (a tab, say) or a DEL.
    static func areFieldValueBytes(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        while index + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            if WordBytes.lanes(of: word, below: 0x20) | WordBytes.lanes(of: word, equalTo: 0x7F) != 0 {
                for byte in bytes[index..<index + 8] where !isFieldValueByte(byte) { return false }
            }
            index += 8
        }
        for byte in bytes[index...] where !isFieldValueByte(byte) { return false }
        return true
    }

    /// HTAB, SP, visible ASCII and bytes above ASCII (obs-text): what a field value, a reason
    /// phrase or a chunk extension may hold.
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }
}

import NIOCore

/// Reads one HTTP/1.1 message body (RFC 9112 §6, §7.1) from a connection's bytes, whatever frames
/// it: a length, chunks, or the end of the connection. Shared by the request and answer parsers.
public struct HTTP1BodyReader {
    public enum Framing: Equatable {
        /// No body: the head is the whole message.
        case none
        case length(Int)
        /// `Transfer-Encoding: chunked`; chunk extensions and trailer fields are read and dropped.
        case chunked
        /// The body ends with the connection (an answer without a length).
        case untilClose
    }

    public enum Event {
        /// A piece of the body: a slice of the bytes read, not a copy.
        case body(ByteBuffer)
        case end
    }

    enum State {
        /// `remaining` bytes of a length-framed body to come.
        case fixed(remaining: Int)
        /// A chunk's size line.
        case chunkSize
        /// `remaining` bytes of a chunk to come.
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data.
        case chunkEnd
        /// Trailer lines after the last chunk, up to an empty line; `bytes` of them so far.
        case trailers(bytes: Int)
        case untilClose
        /// The body is complete: the next event is `.end`.
        case complete
        /// `.end` was returned.
        case ended
    }

    private var state: State
    /// Bytes of the current chunk size line or trailer line searched already (`readLine`).
    private var searched = 0
    /// The trailer section may be this long.
    private let maximumTrailerBytes: Int

    /// A chunk's size line, extensions included, may be this long.
    public static let maximumChunkLineBytes = 4096

    public init(_ framing: Framing, maximumTrailerBytes: Int) {
        switch framing {
        case .none, .length(0): state = .complete
        case .length(let length): state = .fixed(remaining: length)
        case .chunked: state = .chunkSize
        case .untilClose: state = .untilClose
        }
        self.maximumTrailerBytes = maximumTrailerBytes
    }

    /// The body has been read to its end.
    public var isEnded: Bool {
        if case .ended = state { return true }
        return false
    }

    /// The connection's input ended: `.end` when that ends the body, else the error of a body cut short.
    public mutating func inputEnded() throws(HTTP1Syntax.Error) -> Event? {
        switch state {
        case .untilClose, .complete:
            state = .ended
            return .end
        case .ended:
            return nil
        case .fixed, .chunkSize, .chunkData, .chunkEnd, .trailers:
            throw HTTP1Syntax.Error("the connection ended in the middle of a message")
        }
    }

    /// The next event from `buffer`, whose bytes it consumes; nil when more bytes are needed (or
    /// after the end).
    public mutating func next(_ buffer: inout ByteBuffer) throws(HTTP1Syntax.Error) -> Event? {
        while true {
            switch state {
            case .fixed(let remaining):
                guard let (piece, left) = Self.piece(of: &buffer, remaining: remaining) else { return nil }
                state = left == 0 ? .complete : .fixed(remaining: left)
                return .body(piece)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .chunkSize:
                // Over its limit it is malformed (400), not a head too large (431).
                guard let line = try HTTP1Syntax.readLine(&buffer, limit: Self.maximumChunkLineBytes, what: "chunk size line", tooLarge: false, searched: &searched) else {
                    return nil
                }
                let size = try Self.chunkSize(line)
                state = size == 0 ? .trailers(bytes: 0) : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard let (piece, left) = Self.piece(of: &buffer, remaining: remaining) else { return nil }
                state = left == 0 ? .chunkEnd : .chunkData(remaining: left)
                return .body(piece)
            case .chunkEnd:
                guard buffer.readableBytes >= 2 else { return nil }
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw HTTP1Syntax.Error("a chunk's data is not followed by CRLF") }
                state = .chunkSize
            case .trailers(let bytes):
                let limit = maximumTrailerBytes - bytes
                guard limit > 0 else { throw HTTP1Syntax.Error("the trailer section is over \(maximumTrailerBytes) bytes", tooLarge: true) }
                guard let line = try HTTP1Syntax.readLine(&buffer, limit: limit, what: "trailer section", reportedLimit: maximumTrailerBytes, searched: &searched) else {
                    return nil
                }
                if line.readableBytes == 0 {
                    state = .complete
                } else {
                    try line.withUnsafeReadableBytes { bytes throws(HTTP1Syntax.Error) in
                        let name = UnsafeRawBufferPointer(rebasing: bytes[..<(try HTTP1Syntax.field(bytes).nameLength)])
                        // Framing fields may not be trailers (RFC 9110 §6.5.1), and llhttp refuses them.
                        if HTTP1Syntax.equalsLowercased(name, "content-length") || HTTP1Syntax.equalsLowercased(name, "transfer-encoding") {
                            throw HTTP1Syntax.Error("a framing field in the trailer section")
                        }
                    }
                    state = .trailers(bytes: bytes + line.readableBytes + 2)
                }
            case .complete:
                state = .ended
                return .end
            case .ended:
                return nil
            }
        }
    }

    /// Up to `remaining` bytes of a body from `buffer` (a slice, not a copy), and how many are
    /// still to come; nil when `buffer` has none.
    private static func piece(of buffer: inout ByteBuffer, remaining: Int) -> (ByteBuffer, left: Int)? {
        guard buffer.readableBytes > 0 else { return nil }
        let count = min(remaining, buffer.readableBytes)
        return (buffer.readSlice(length: count)!, remaining - count)
    }

    /// A chunk size: 1 to 15 hex digits, then extensions (`;name` or `;name=value`, the value a
    /// token or a quoted string), which are ignored. No whitespace anywhere, as llhttp reads them.
    static func chunkSize(_ line: ByteBuffer) throws(HTTP1Syntax.Error) -> Int {
        try line.withUnsafeReadableBytes { bytes throws(HTTP1Syntax.Error) in
            var size = 0
            var index = 0
            while index < bytes.count, let digit = hexValue(bytes[index]) {
                guard index < 15 else { throw HTTP1Syntax.Error("a chunk size has more than 15 hex digits") }
                size = size << 4 | digit
                index += 1
            }
            guard index > 0 else { throw HTTP1Syntax.Error("a chunk size line does not start with a hex number") }
            while index < bytes.count {
                guard bytes[index] == UInt8(ascii: ";") else { throw HTTP1Syntax.Error("a chunk size is followed by something other than an extension") }
                index += 1
                let name = index
                while index < bytes.count, HTTPField.isTokenByte(bytes[index]) { index += 1 }
                guard index > name else { throw HTTP1Syntax.Error("a chunk extension without a name") }
                guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else { continue }
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                    index += 1
                    while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                        let byte = bytes[index]
                        guard byte == 0x09 || (byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\")) else {
                            throw HTTP1Syntax.Error("a chunk extension's quoted value holds a byte it may not")
                        }
                        index += 1
                    }
                    guard index < bytes.count else { throw HTTP1Syntax.Error("a chunk extension's quoted value is not closed") }
                    index += 1
                } else {
                    let value = index
                    while index < bytes.count, HTTPField.isTokenByte(bytes[index]) { index += 1 }
                    guard index > value else { throw HTTP1Syntax.Error("a chunk extension without a value after =") }
                }
            }
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
}

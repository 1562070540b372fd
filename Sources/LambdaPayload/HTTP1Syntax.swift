import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The pieces of HTTP/1.1's message syntax (RFC 9112) that the gateway's two parsers share: the
/// client's requests (`HTTP1RequestParser`) and Lambda's answers (`UpstreamResponseParser`).
///
/// Strict where leniency could frame a message two ways: every line ends in CRLF, no folded lines,
/// field names are tokens with no space before the colon, values hold no control bytes, lengths
/// have no sign and cannot overflow.
public enum HTTP1Syntax {
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public var description: String
        /// The head (or a line) is over its limit: a client is answered 431 rather than 400.
        public var isTooLarge: Bool

        public init(_ description: String, tooLarge: Bool = false) {
            self.description = description
            self.isTooLarge = tooLarge
        }
    }

    /// Where the search for the end of a head has come, so that a head arriving in small pieces is
    /// not searched from its start each time.
    public struct HeadSearch {
        /// Bytes from the buffer's reader index that hold no end of head. Counted from the reader
        /// index: a caller that consumes bytes before asking again starts a new search.
        private var searched = 0

        public init() {}

        /// The length of the head up to and including its empty line, or nil while it is
        /// incomplete. A bare LF is an error; so is a head over `limit` bytes, whole or not yet.
        public mutating func headLength(_ buffer: ByteBuffer, limit: Int) throws(Error) -> Int? {
            let result: Int?? = buffer.withUnsafeReadableBytes { bytes in
                guard let base = bytes.baseAddress else { return .some(nil) }
                var from = searched
                while from < bytes.count {
                    guard let lf = memchr(base + from, 0x0A, bytes.count - from) else {
                        from = bytes.count
                        break
                    }
                    let index = base.distance(to: UnsafeRawPointer(lf))
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
                searched = 0
                guard length <= limit else { throw Error("the head is over \(limit) bytes", tooLarge: true) }
                return length
            case .some(nil):
                if buffer.readableBytes > limit { throw Error("the head is over \(limit) bytes", tooLarge: true) }
                return nil
            }
        }
    }

    /// The next line without its CRLF, or nil while it is incomplete. A bare LF, or a line longer
    /// than `limit`, is an error (which names `reportedLimit`, the limit of the whole `what`, and
    /// is `isTooLarge` when `tooLarge`). `searched`: how many bytes of the line were searched
    /// already without an LF, so that a line arriving a byte at a time is not searched from its
    /// start each time; zero again once a line is read.
    public static func readLine(
        _ buffer: inout ByteBuffer, limit: Int, what: String, reportedLimit: Int? = nil, tooLarge: Bool = true, searched: inout Int
    ) throws(Error) -> ByteBuffer? {
        let window = min(buffer.readableBytes, limit + 2)
        let from = min(searched, window)
        let found = buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard let base = bytes.baseAddress, from < window, let lf = memchr(base + from, 0x0A, window - from) else { return nil }
            return base.distance(to: UnsafeRawPointer(lf))
        }
        guard let lf = found else {
            if buffer.readableBytes >= limit + 2 { throw Error("the \(what) is over \(reportedLimit ?? limit) bytes", tooLarge: tooLarge) }
            searched = window
            return nil
        }
        guard lf > 0, buffer.getInteger(at: buffer.readerIndex + lf - 1, as: UInt8.self) == 0x0D else {
            throw Error("a line of the \(what) ends in a bare LF")
        }
        searched = 0
        let line = buffer.readSlice(length: lf - 1)!
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// The field lines of a head, from `index` (the first byte after the start line) up to and
    /// including its empty line, one at a time: `body` gets each line's name and value (without the
    /// whitespace around it). Returns where the head ends. The head must end in CRLF CRLF
    /// (`HeadSearch`).
    @inlinable
    public static func forEachField(
        in bytes: UnsafeRawBufferPointer, from index: Int, _ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(Error) -> Void
    ) throws(Error) -> Int {
        var index = index
        while !(bytes[index] == 0x0D && bytes[index + 1] == 0x0A) {
            var end = index
            while bytes[end] != 0x0D { end += 1 }
            guard bytes[end + 1] == 0x0A else { throw Error("a field line holds a bare CR") }
            let line = UnsafeRawBufferPointer(rebasing: bytes[index..<end])
            let (nameLength, valueRange) = try field(line)
            try body(UnsafeRawBufferPointer(rebasing: line[..<nameLength]), UnsafeRawBufferPointer(rebasing: line[valueRange]))
            index = end + 2
        }
        return index + 2
    }

    /// A field line: the name's length, and where the value is (without the whitespace around it).
    @inlinable
    public static func field(_ line: UnsafeRawBufferPointer) throws(Error) -> (nameLength: Int, value: Range<Int>) {
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
    public static func contentLength(_ value: UnsafeRawBufferPointer) throws(Error) -> Int {
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
    @inlinable
    public static func forEachToken(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
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
    @inlinable
    public static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
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
    @inlinable
    public static func areFieldValueBytes(_ bytes: UnsafeRawBufferPointer) -> Bool {
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
    @inlinable
    public static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }
}

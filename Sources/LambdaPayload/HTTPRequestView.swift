import NIOCore

import struct Foundation.Date

/// One header field as received or as sent. Names keep their case; compare them case-insensitively.
public struct HTTPField: Sendable, Hashable {
    public var name: String
    public var value: String {
        // A changed value is no longer the one escaped beforehand.
        didSet { preEscaped = nil }
    }
    /// The value already written as a JSON string, when it was escaped once for many requests.
    public private(set) var preEscaped: PreEscapedString?

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    /// A field whose value the payload codecs copy as escaped once, not escape again.
    public init(_ name: String, _ value: PreEscapedString) {
        self.name = name
        self.value = value.text
        self.preEscaped = value
    }

    public static func == (lhs: HTTPField, rhs: HTTPField) -> Bool {
        lhs.name == rhs.name && lhs.value == rhs.value
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(value)
    }

    /// A name that is an HTTP token (RFC 9110 §5.6.2) and a value without CR, LF or NUL: a field
    /// that cannot break HTTP/1.1's framing.
    public var isWellFormed: Bool {
        Self.isToken(name) && Self.hasNoLineBreakOrNUL(value)
    }

    /// Whether `text` has no CR, LF or NUL: the bytes that would break HTTP/1.1's framing, and that
    /// HTTP/2 forbids in any field value (RFC 9113 §8.2.1). One pass over the contiguous bytes, eight
    /// at a time: a word none of whose bytes is below 14 (CR is 13, LF 10, NUL 0) passes, and only a
    /// word with one (a tab, say) is looked at byte by byte. (A `utf8.contains` closure per byte cost
    /// some 2,800 instructions per Invoke call.)
    public static func hasNoLineBreakOrNUL(_ text: String) -> Bool {
        text.withUTF8Bytes(hasNoLineBreakOrNUL)
    }

    private static func hasNoLineBreakOrNUL(_ raw: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        while index + 8 <= raw.count {
            if WordBytes.lanes(of: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self), below: 14) != 0 {
                for byte in raw[index..<index + 8] where isLineBreakOrNUL(byte) { return false }
            }
            index += 8
        }
        for byte in raw[index...] where isLineBreakOrNUL(byte) { return false }
        return true
    }

    @inline(__always)
    private static func isLineBreakOrNUL(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") || byte == 0
    }

    public static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenByte)
    }

    /// Letters, digits and ``!#$%&'*+-.^_`|~``: a bit per byte value, for bytes 0–63 and 64–127
    /// (it runs for every byte of every field name the gateway writes; a search of the list of
    /// symbols per `-` cost more than the rest of the check).
    @inlinable
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0..<64: tokenBytesBelow64 & (1 << UInt64(byte)) != 0
        case 64..<128: tokenBytesFrom64 & (1 << UInt64(byte - 64)) != 0
        default: false
        }
    }

    public static let tokenBytesBelow64: UInt64 = 0x03FF_6CFA_0000_0000
    public static let tokenBytesFrom64: UInt64 = 0x57FF_FFFF_C7FF_FFFE
}

/// A client request as the payload codecs need it, independent of HTTP/1.1 or HTTP/2 framing.
public struct HTTPRequestView: Sendable {
    public var method: String
    /// The normalized path (`PathNormalizer`), without the query.
    public var path: String
    /// The raw query after `?`, byte for byte; `nil` when the target had no `?`.
    public var query: String?
    /// Every field as received (HTTP/2 pseudo-headers excluded), plus the ones the gateway adds.
    public var headers: [HTTPField]
    /// `Host` or `:authority`.
    public var authority: String?
    public var body: ByteBuffer
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0`.
    public var protocolName: String
    /// The peer IP of the TCP connection.
    public var sourceIP: String
    public var receivedAt: Date

    public init(
        method: String,
        path: String,
        query: String? = nil,
        headers: [HTTPField] = [],
        authority: String? = nil,
        body: ByteBuffer = ByteBuffer(),
        protocolName: String = "HTTP/1.1",
        sourceIP: String = "127.0.0.1",
        receivedAt: Date = Date(timeIntervalSince1970: 0)
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.authority = authority
        self.body = body
        self.protocolName = protocolName
        self.sourceIP = sourceIP
        self.receivedAt = receivedAt
    }

    /// The first value of `name` (case-insensitive).
    public func firstValue(_ name: String) -> String? {
        for index in headers.indices where headers[index].name.asciiCaseInsensitiveEquals(name) {
            return headers[index].value
        }
        return nil
    }
}

extension String {
    /// ASCII case-insensitive comparison, the way HTTP field names compare. Over the two strings'
    /// bytes in place (a native or small string has them contiguous), not through two index-checked
    /// UTF-8 views: it runs for several names of every request.
    @inlinable
    public func asciiCaseInsensitiveEquals(_ other: String) -> Bool {
        let lhs = utf8
        let rhs = other.utf8
        guard lhs.count == rhs.count else { return false }
        let inPlace = lhs.withContiguousStorageIfAvailable { left in
            rhs.withContiguousStorageIfAvailable { right in Self.asciiCaseInsensitiveEquals(left, right) }
        }
        if let inPlace, let equal = inPlace { return equal }
        return Self.asciiCaseInsensitiveEquals(Array(lhs), Array(rhs))
    }

    /// Equal counts: the same bytes, or bytes that differ only in the case of an ASCII letter.
    @inlinable
    public static func asciiCaseInsensitiveEquals(_ lhs: some RandomAccessCollection<UInt8>, _ rhs: some RandomAccessCollection<UInt8>) -> Bool {
        for (a, b) in zip(lhs, rhs) where a != b {
            guard a | 0x20 == b | 0x20, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(a | 0x20) else { return false }
        }
        return true
    }

    /// ASCII lower-casing; other characters are left alone. A text already in lower case is
    /// returned as it is; another is written in one pass into the new string's own storage (no
    /// heap at all for up to 15 bytes, which a string keeps inline). Mapped into an array first,
    /// every capitalized field name of every request (`Content-Type`) cost two allocations.
    ///
    /// The check for a capital reads the bytes in place, not through the index-checked UTF-8 view:
    /// it runs for every field name of every payload.
    public var asciiLowercased: String {
        let utf8 = self.utf8
        let hasCapital = utf8.withContiguousStorageIfAvailable { $0.contains(where: Self.isCapital) } ?? utf8.contains(where: Self.isCapital)
        guard hasCapital else { return self }
        return String(unsafeUninitializedCapacity: utf8.count) { buffer in
            var count = 0
            for byte in utf8 {
                buffer[count] = Self.isCapital(byte) ? byte | 0x20 : byte
                count += 1
            }
            return count
        }
    }

    /// The text's UTF-8 bytes, borrowed where they are (a native or small string keeps them
    /// contiguous: every string on Linux), from a copy otherwise. Borrowing spares the retain and
    /// release of copying the text into a `var` to reach `withUTF8`, which the writers and checks
    /// on the request path paid for every name and value.
    @inlinable
    public func withUTF8Bytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        if let result = try utf8.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) { return result }
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    static func isCapital(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "A") < 26
    }

    /// Whether the text's bytes are `literal`'s, compared in place (`==` between two texts that
    /// are not the same storage goes through `String`'s general comparison, some 60 instructions).
    @inlinable
    public func equalsBytes(_ literal: StaticString) -> Bool {
        let utf8 = self.utf8
        guard utf8.count == literal.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        return utf8.withContiguousStorageIfAvailable { $0.elementsEqual(expected) } ?? utf8.elementsEqual(expected)
    }
}

/// Field names that describe one hop and never travel into a payload or out of a response.
enum HopByHop {
    /// Whether a lower-cased name is hop-by-hop, by comparison rather than hashing: it runs for
    /// every header of every request. A name is compared only with those of its length (most
    /// have none: `user-agent` is compared with two names, not seven). The names, lower-cased:
    /// `connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`, `te`,
    /// `trailer`; `ResponseHeaders.acceptedName` drops these and `content-length`.
    static func contains(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: name.equalsBytes("te")
        case 7: name.equalsBytes("upgrade") || name.equalsBytes("trailer")
        case 10: name.equalsBytes("connection") || name.equalsBytes("keep-alive")
        case 16: name.equalsBytes("proxy-connection")
        case 17: name.equalsBytes("transfer-encoding")
        default: false
        }
    }
}

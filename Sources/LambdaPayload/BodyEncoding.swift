import NIOCore

/// Whether a request body goes to the function as text or as base64 (docs/DECISIONS.md D6).
public enum BodyEncoding {
    /// True when the body is sent as text: no content coding, a textual media type, valid UTF-8.
    public static func isText(contentType: String?, contentEncoding: String?, body: ByteBuffer) -> Bool {
        if body.readableBytes == 0 { return true }
        if let coding = contentEncoding?.trimmingASCIIWhitespace(), !coding.isEmpty,
            !coding.asciiCaseInsensitiveEquals("identity")
        {
            return false
        }
        guard let contentType, isTextual(mediaType: contentType) else { return false }
        return body.withUnsafeReadableBytes { isValidUTF8($0) }
    }

    /// `text/*`, JSON, JavaScript, XML, form data, and any `+json`/`+xml` type; parameters ignored.
    public static func isTextual(mediaType contentType: String) -> Bool {
        var contentType = contentType
        return contentType.withUTF8 { isTextual(mediaType: $0) }
    }

    /// The media type's bytes up to `;`, without surrounding blanks, compared case-insensitively in
    /// place (no strings made: this runs for every request with a body).
    static func isTextual(mediaType bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var end = bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.count
        var start = 0
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        let media = UnsafeBufferPointer(rebasing: bytes[start..<end])
        func hasPrefix(_ prefix: StaticString) -> Bool {
            media.count >= prefix.utf8CodeUnitCount && matches(prefix, at: 0)
        }
        func hasSuffix(_ suffix: StaticString) -> Bool {
            media.count >= suffix.utf8CodeUnitCount && matches(suffix, at: media.count - suffix.utf8CodeUnitCount)
        }
        func equals(_ other: StaticString) -> Bool {
            media.count == other.utf8CodeUnitCount && matches(other, at: 0)
        }
        func matches(_ text: StaticString, at offset: Int) -> Bool {
            for index in 0..<text.utf8CodeUnitCount where lowercased(media[offset + index]) != text.utf8Start[index] {
                return false
            }
            return true
        }
        if hasPrefix("text/") { return true }
        if equals("application/json") || equals("application/javascript") || equals("application/xml") || equals("application/x-www-form-urlencoded") {
            return true
        }
        return media.contains(UInt8(ascii: "/")) && (hasSuffix("+json") || hasSuffix("+xml"))
    }

    @inline(__always)
    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // Fast path: pure ASCII is by far the common case, tested eight bytes at a time.
        var index = 0
        if let base = bytes.baseAddress {
            while index + 8 <= bytes.count, base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                index += 8
            }
        }
        while index < bytes.count, bytes[index] < 0x80 { index += 1 }
        if index == bytes.count { return true }
        var iterator = bytes[index...].makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        let bytes = Array(utf8)
        var start = 0
        var end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        if start == 0 && end == bytes.count { return self }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}

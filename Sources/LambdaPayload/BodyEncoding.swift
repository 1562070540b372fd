import NIOCore

/// Whether a request body goes to the function as text or as base64 (lambda.md §5.1, Decision).
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
        let essence = (contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        let media = String(essence).trimmingASCIIWhitespace().asciiLowercased
        if media.hasPrefix("text/") { return true }
        switch media {
        case "application/json", "application/javascript", "application/xml", "application/x-www-form-urlencoded":
            return true
        default:
            return media.contains("/") && (media.hasSuffix("+json") || media.hasSuffix("+xml"))
        }
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

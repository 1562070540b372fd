/// AWS's URI encoding (RFC 3986 unreserved characters kept, everything else `%XX` with upper-case hex).
public enum URIEncoding {
    private static let upperHex: [UInt8] = Array("0123456789ABCDEF".utf8)

    @inline(__always)
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Encodes every byte outside `A–Z a–z 0–9 - . _ ~` (and `/` when `keepSlash`).
    ///
    /// This is how a Lambda ARN becomes a path segment (`:` → `%3A`), and, applied to a path exactly as
    /// sent, how SigV4's canonical URI is built ("sign what you send": `%3A` signs as `%253A`).
    public static func encode(_ string: some StringProtocol, keepSlash: Bool = false) -> String {
        var out = [UInt8]()
        out.reserveCapacity(string.utf8.count + 16)
        append(string.utf8, keepSlash: keepSlash, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func append(_ string: String, keepSlash: Bool, to out: inout [UInt8]) {
        var string = string
        string.withUTF8 { appendContiguous(UnsafeRawBufferPointer($0), keepSlash: keepSlash, to: &out) }
    }

    static func append<Bytes: Sequence>(_ bytes: Bytes, keepSlash: Bool, to out: inout [UInt8])
    where Bytes.Element == UInt8 {
        let done: Void? = bytes.withContiguousStorageIfAvailable { storage in
            appendContiguous(UnsafeRawBufferPointer(storage), keepSlash: keepSlash, to: &out)
        }
        if done == nil {
            Array(bytes).withUnsafeBytes { appendContiguous($0, keepSlash: keepSlash, to: &out) }
        }
    }

    /// Copies runs that need no escape in bulk; most paths are mostly unreserved bytes.
    static func appendContiguous(_ bytes: UnsafeRawBufferPointer, keepSlash: Bool, to out: inout [UInt8]) {
        var runStart = 0
        for index in 0..<bytes.count {
            let byte = bytes[index]
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) { continue }
            if runStart < index { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index])) }
            out.append(UInt8(ascii: "%"))
            out.append(upperHex[Int(byte >> 4)])
            out.append(upperHex[Int(byte & 0x0F)])
            runStart = index + 1
        }
        if runStart < bytes.count { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart...])) }
    }

    /// Decodes `%XX` escapes only (`+` is left alone); an invalid escape is kept as written.
    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.endIndex,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

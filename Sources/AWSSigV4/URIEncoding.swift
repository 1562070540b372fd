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

    static func append<Bytes: Sequence>(_ bytes: Bytes, keepSlash: Bool, to out: inout [UInt8])
    where Bytes.Element == UInt8 {
        for byte in bytes {
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(upperHex[Int(byte >> 4)])
                out.append(upperHex[Int(byte & 0x0F)])
            }
        }
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

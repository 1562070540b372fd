/// The gateway's path normalization (RFC 3986 §6.2.2, §5.2.4): decode only unreserved escapes,
/// upper-case the others, remove dot segments (never above `/`), keep slashes and `%2F` as they are.
/// The normalized path is what intentions match and what the function sees.
public enum PathNormalizer {
    public enum Failure: Error, Hashable {
        /// The path holds `%00`.
        case nulByte
        /// The path does not start with `/`.
        case notAbsolute
    }

    public static func normalize(_ path: String) throws(Failure) -> String {
        guard path.hasPrefix("/") else { throw .notAbsolute }
        return isNormal(path) ? path : try normalizeFully(path)
    }

    /// Decoding and dot-segment removal, for a path that starts with `/`.
    static func normalizeFully(_ path: String) throws(Failure) -> String {
        let bytes = Array(path.utf8)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count, let high = hex(bytes[index + 1]), let low = hex(bytes[index + 2]) {
                let value = high << 4 | low
                if value == 0 { throw .nulByte }
                if isUnreserved(value) && !completesEscape(value, after: decoded) {
                    decoded.append(value)
                } else {
                    decoded.append(UInt8(ascii: "%"))
                    decoded.append(upper(bytes[index + 1]))
                    decoded.append(upper(bytes[index + 2]))
                }
                index += 3
            } else {
                decoded.append(byte)
                index += 1
            }
        }
        return removeDotSegments(String(decoding: decoded, as: UTF8.self))
    }

    /// A path with no `%` and no `/.` is its own normal form: nothing to decode, no dot segment.
    /// Most paths are; one scan spares them the decoding and the split into segments.
    static func isNormal(_ path: String) -> Bool {
        var previous: UInt8 = 0
        for byte in path.utf8 {
            if byte == UInt8(ascii: "%") || (byte == UInt8(ascii: ".") && previous == UInt8(ascii: "/")) { return false }
            previous = byte
        }
        return true
    }

    /// RFC 3986 §5.2.4 on an absolute path; `..` above the root is dropped.
    static func removeDotSegments(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var output: [Substring] = []
        for (position, segment) in segments.enumerated() {
            let isLast = position == segments.count - 1
            switch segment {
            case ".":
                if isLast { output.append("") }
            case "..":
                if !output.isEmpty { output.removeLast() }
                if isLast { output.append("") }
            default:
                output.append(segment)
            }
        }
        return "/" + output.joined(separator: "/")
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Whether writing `byte` after `output` would make an escape of a `%` that began none: `%7%41`
    /// must not become `%7A`, which normalizing again, or a function decoding the path, reads as `z`
    /// (`/%%36%31dmin` became `/%61dmin`: it passed a deny on `/admin`, and a function that decodes
    /// its path read `/admin`). Such an escape is kept, so the normalized path normalizes to itself.
    private static func completesEscape(_ byte: UInt8, after output: [UInt8]) -> Bool {
        guard hex(byte) != nil else { return false }
        if output.last == UInt8(ascii: "%") { return true }
        return output.count >= 2 && output[output.count - 2] == UInt8(ascii: "%") && hex(output[output.count - 1]) != nil
    }

    private static func upper(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) ? byte - 32 : byte
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default: false
        }
    }
}

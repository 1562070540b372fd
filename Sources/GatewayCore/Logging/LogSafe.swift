/// Values from the network (SNI, paths, header values, SPIFFE IDs, what a function or AWS said)
/// as they may appear in a log line: printable ASCII only, so a client can never start a new line,
/// move the terminal's cursor or hide text with NUL; and capped, so one value cannot fill the log.
public enum LogSafe {
    /// The cap for values without one of their own: longer than any SNI (253 bytes) or SPIFFE ID
    /// a sane peer sends.
    public static let defaultLimit = 256

    /// `value` with every byte outside printable ASCII written `\xNN`, `\` written `\\`, and at most
    /// `limit` bytes of it kept (`...(+N bytes)` says how many were cut).
    public static func text(_ value: some StringProtocol, limit: Int = defaultLimit) -> String {
        let utf8 = value.utf8
        if utf8.count <= limit && utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) {
            return String(value)
        }
        var escaped: [UInt8] = []
        escaped.reserveCapacity(min(utf8.count, limit) + 16)
        var taken = 0
        for byte in utf8 {
            guard taken < limit else { break }
            taken += 1
            switch byte {
            case UInt8(ascii: "\\"):
                escaped.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x20..<0x7F:
                escaped.append(byte)
            default:
                escaped.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "x"), hexDigit(byte >> 4), hexDigit(byte & 0xF)])
            }
        }
        var result = String(decoding: escaped, as: UTF8.self)
        if utf8.count > taken { result += "...(+\(utf8.count - taken) bytes)" }
        return result
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}

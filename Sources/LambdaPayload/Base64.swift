import NIOCore

/// Standard base64 (RFC 4648 §4, with padding), written straight into a `ByteBuffer`.
enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    static func encode(_ input: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        let length = encodedLength(input.count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
            alphabet.withUnsafeBufferPointer { table in
                var out = 0
                var index = 0
                while index + 3 <= input.count {
                    let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                    output[out] = table[Int(value >> 18 & 0x3F)]
                    output[out + 1] = table[Int(value >> 12 & 0x3F)]
                    output[out + 2] = table[Int(value >> 6 & 0x3F)]
                    output[out + 3] = table[Int(value & 0x3F)]
                    index += 3
                    out += 4
                }
                let rest = input.count - index
                if rest > 0 {
                    let value = UInt32(input[index]) << 16 | (rest == 2 ? UInt32(input[index + 1]) << 8 : 0)
                    output[out] = table[Int(value >> 18 & 0x3F)]
                    output[out + 1] = table[Int(value >> 12 & 0x3F)]
                    output[out + 2] = rest == 2 ? table[Int(value >> 6 & 0x3F)] : UInt8(ascii: "=")
                    output[out + 3] = UInt8(ascii: "=")
                }
            }
            return length
        }
    }

    /// Decodes standard base64; padding is optional, white space and other characters are errors.
    static func decode(_ input: some Collection<UInt8>) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(input.count / 4 * 3)
        var accumulator: UInt32 = 0
        var bits = 0
        var padding = 0
        for byte in input {
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="):
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil }  // data after padding
            accumulator = accumulator << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // Leftover bits must be a valid tail: 2 or 3 symbols in the last group, at most 2 '='.
        guard padding <= 2, bits < 6 else { return nil }
        if padding > 0, (input.count % 4) != 0 { return nil }
        return out
    }
}

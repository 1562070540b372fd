/// Writes a compiled format's segments for one entry at the end of the caller's buffer.
///
/// Values from the network (headers, path, method, SNI, SPIFFE ID, subject, details) can never split
/// or forge a line. A text line escapes them as `LogSafe` does, without its cap: every byte outside
/// printable ASCII as `\xNN` and `\` as `\\`. A JSON line escapes `"`, `\`, control characters and the
/// C1 controls a terminal would obey as `\u00XX`, and writes invalid UTF-8 as U+FFFD.
///
/// Each value is first written as it is and then escaped in place when it holds a byte that needs it,
/// so a clean value costs one copy and one scan, and no allocation.
enum AccessLogRenderer {
    enum Escaping {
        case text
        case json
    }

    static func render(_ segments: [AccessLogSegment], _ entry: AccessLogEntry, into buffer: inout [UInt8]) {
        for segment in segments {
            switch segment {
            case .literal(let bytes):
                buffer.append(contentsOf: bytes)
            case .text(let op, let maxLength):
                write(op.value(of: entry), maxLength: maxLength, escaping: .text, into: &buffer)
            case .jsonStringPart(let op, let maxLength):
                write(op.value(of: entry), maxLength: maxLength, escaping: .json, into: &buffer)
            case .jsonValue(let op, let maxLength):
                let value = op.value(of: entry)
                switch value {
                case .missing:
                    buffer.append(contentsOf: Self.null)
                case .number(let number):
                    appendDecimal(number, to: &buffer)
                case .text, .startTime, .flags:
                    buffer.append(UInt8(ascii: "\""))
                    write(value, maxLength: maxLength, escaping: .json, into: &buffer)
                    buffer.append(UInt8(ascii: "\""))
                }
            }
        }
    }

    private static let null = Array("null".utf8)

    /// `value` as text: `-` when missing, else cut to `maxLength` and escaped.
    private static func write(_ value: AccessLogValue, maxLength: Int?, escaping: Escaping, into buffer: inout [UInt8]) {
        let start = buffer.count
        switch value {
        case .missing:
            buffer.append(UInt8(ascii: "-"))
            return
        case .number(let number):
            appendDecimal(number, to: &buffer)
        case .text(var text):
            // From the string's contiguous bytes: appending its UTF8View goes byte by byte.
            text.withUTF8 { buffer.append(contentsOf: $0) }
        case .startTime(let time, let format):
            format.append(time, to: &buffer)
        case .flags(let flags):
            appendFlags(flags, to: &buffer)
        }
        if let maxLength, buffer.count - start > maxLength {
            // Never inside a character: back off over its continuation bytes.
            var end = start + maxLength
            while end > start && buffer[end] & 0xC0 == 0x80 { end -= 1 }
            buffer.removeSubrange(end...)
        }
        escape(from: start, in: &buffer, escaping)
    }

    /// Escapes `buffer[start...]` in place when a byte of it needs escaping.
    static func escape(from start: Int, in buffer: inout [UInt8], _ escaping: Escaping) {
        let firstToEscape: Int = buffer.withUnsafeBufferPointer { bytes in
            var index = start
            switch escaping {
            case .text: while index < bytes.count && isPlainText(bytes[index]) { index += 1 }
            case .json: while index < bytes.count && isPlainJSON(bytes[index]) { index += 1 }
            }
            return index
        }
        guard firstToEscape < buffer.count else { return }
        let rest = Array(buffer[firstToEscape...])
        buffer.removeSubrange(firstToEscape...)
        switch escaping {
        case .text: appendTextEscaped(rest, to: &buffer)
        case .json: appendJSONEscaped(rest, to: &buffer)
        }
    }

    @inline(__always)
    private static func isPlainText(_ byte: UInt8) -> Bool {
        // `"` too (as nginx's `escape=default`): Envoy-style formats quote values, and a value
        // holding one would shift the fields after it.
        byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") && byte != UInt8(ascii: "\"")
    }

    /// ASCII that JSON takes as it is. Other bytes go through `appendJSONEscaped`, which checks UTF-8.
    @inline(__always)
    private static func isPlainJSON(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") && byte != UInt8(ascii: "\"")
    }

    /// `LogSafe`'s rule, uncapped.
    static func appendTextEscaped(_ bytes: some Sequence<UInt8>, to buffer: inout [UInt8]) {
        for byte in bytes {
            if isPlainText(byte) {
                buffer.append(byte)
            } else if byte == UInt8(ascii: "\\") {
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "\\"))
            } else {
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "x"))
                buffer.append(hexDigit(byte >> 4))
                buffer.append(hexDigit(byte & 0x0F))
            }
        }
    }

    /// The content of a JSON string (without its quotes). Invalid UTF-8 becomes U+FFFD (Swift's
    /// decoding repairs it), so the line stays valid JSON whatever the bytes.
    static func appendJSONEscaped(_ bytes: some Collection<UInt8>, to buffer: inout [UInt8]) {
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            switch scalar.value {
            case 0x22, 0x5C:
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(truncatingIfNeeded: scalar.value))
            case 0..<0x20, 0x7F...0x9F:
                buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                buffer.append(hexDigit(UInt8(scalar.value >> 4)))
                buffer.append(hexDigit(UInt8(scalar.value & 0x0F)))
            default:
                buffer.append(contentsOf: scalar.utf8)
            }
        }
    }

    /// Envoy's short codes joined by `,`; `-` when none.
    private static func appendFlags(_ flags: ResponseFlags, to buffer: inout [UInt8]) {
        guard !flags.isEmpty else {
            buffer.append(UInt8(ascii: "-"))
            return
        }
        var first = true
        for (flag, code) in ResponseFlags.envoyCodes where flags.contains(flag) {
            if !first { buffer.append(UInt8(ascii: ",")) }
            first = false
            buffer.append(contentsOf: code.utf8)
        }
    }

    /// `value` in decimal, padded with zeros to `width` digits.
    static func appendDecimal(_ value: Int64, width: Int = 1, to buffer: inout [UInt8]) {
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        let start = buffer.count
        repeat {
            buffer.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        while buffer.count - start < width { buffer.append(UInt8(ascii: "0")) }
        var low = start
        var high = buffer.count - 1
        while low < high {
            buffer.swapAt(low, high)
            low += 1
            high -= 1
        }
    }

    @inline(__always)
    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}

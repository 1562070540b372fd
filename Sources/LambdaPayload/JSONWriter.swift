import NIOCore

/// Compact JSON output straight into a `ByteBuffer`, the body that goes to Lambda.
///
/// Strings are escaped in runs: bytes that need no escape are copied in bulk, so a large text body
/// costs one scan and one copy.
struct JSONWriter {
    var buffer: ByteBuffer
    private var needsComma = false

    init(capacity: Int = 256) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    var bytes: ByteBufferView { buffer.readableBytesView }

    // MARK: Structure

    mutating func beginObject() {
        separate()
        buffer.writeInteger(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        buffer.writeInteger(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func beginArray() {
        separate()
        buffer.writeInteger(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func endArray() {
        buffer.writeInteger(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes `"name":`; the value written next belongs to it.
    mutating func key(_ name: String) {
        separate()
        writeEscaped(name.utf8)
        buffer.writeInteger(UInt8(ascii: ":"))
        needsComma = false
    }

    // MARK: Members

    mutating func member(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    mutating func member(_ name: String, _ value: Bool) {
        key(name)
        bool(value)
    }

    mutating func member(_ name: String, _ value: Int) {
        key(name)
        number(value)
    }

    // MARK: Scalars

    mutating func string(_ value: String) {
        separate()
        writeEscaped(value.utf8)
        needsComma = true
    }

    /// A JSON string from bytes the caller has checked to be valid UTF-8.
    mutating func string(utf8 bytes: some Collection<UInt8>) {
        separate()
        writeEscaped(bytes)
        needsComma = true
    }

    mutating func bool(_ value: Bool) {
        separate()
        buffer.writeStaticString(value ? "true" : "false")
        needsComma = true
    }

    mutating func null() {
        separate()
        buffer.writeStaticString("null")
        needsComma = true
    }

    mutating func number(_ value: Int) {
        separate()
        buffer.writeString(String(value))
        needsComma = true
    }

    /// A string whose content is written by `body` (e.g. base64 without an intermediate copy).
    /// `body` must write only bytes that need no JSON escaping.
    mutating func rawString(_ body: (inout ByteBuffer) -> Void) {
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        body(&buffer)
        buffer.writeInteger(UInt8(ascii: "\""))
        needsComma = true
    }

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .number(let text):
            separate()
            buffer.writeString(text)
            needsComma = true
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { write(element) }
            endArray()
        case .object(let members):
            beginObject()
            for member in members {
                key(member.name)
                write(member.value)
            }
            endObject()
        }
    }

    // MARK: Escaping

    private mutating func separate() {
        if needsComma { buffer.writeInteger(UInt8(ascii: ",")) }
    }

    private mutating func writeEscaped(_ bytes: some Collection<UInt8>) {
        let handled: Void? = bytes.withContiguousStorageIfAvailable { storage in
            Self.writeEscaped(UnsafeRawBufferPointer(storage), to: &buffer)
        }
        if handled == nil {
            Array(bytes).withUnsafeBytes { Self.writeEscaped($0, to: &buffer) }
        }
    }

    /// Two passes: measure the escaped length, then write it in one reservation. A body with many
    /// quotes would otherwise cost a buffer call per quote.
    static func writeEscaped(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        var length = bytes.count + 2
        for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            length += isShortEscape(byte) ? 1 : 5
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
            var out = 0
            output[out] = UInt8(ascii: "\"")
            out += 1
            if length == bytes.count + 2 {
                // Nothing to escape: one copy.
                UnsafeMutableRawBufferPointer(rebasing: output[out..<(out + bytes.count)]).copyMemory(from: bytes)
                out += bytes.count
            } else {
                for byte in bytes {
                    if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                        output[out] = byte
                        out += 1
                        continue
                    }
                    output[out] = UInt8(ascii: "\\")
                    switch byte {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"): output[out + 1] = byte
                    case 0x0A: output[out + 1] = UInt8(ascii: "n")
                    case 0x0D: output[out + 1] = UInt8(ascii: "r")
                    case 0x09: output[out + 1] = UInt8(ascii: "t")
                    case 0x08: output[out + 1] = UInt8(ascii: "b")
                    case 0x0C: output[out + 1] = UInt8(ascii: "f")
                    default:
                        output[out + 1] = UInt8(ascii: "u")
                        output[out + 2] = UInt8(ascii: "0")
                        output[out + 3] = UInt8(ascii: "0")
                        output[out + 4] = hexDigit(byte >> 4)
                        output[out + 5] = hexDigit(byte & 0x0F)
                        out += 6
                        continue
                    }
                    out += 2
                }
            }
            output[out] = UInt8(ascii: "\"")
            return out + 1
        }
    }

    @inline(__always)
    private static func isShortEscape(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x0A, 0x0D, 0x09, 0x08, 0x0C: return true
        default: return false
        }
    }

    @inline(__always)
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }
}

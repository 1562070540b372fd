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

    /// Extra bytes that escaping each byte value adds: 0 for bytes written as they are, 1 for the
    /// two-character escapes, 5 for `\u00XX`.
    static let escapeExtra: [UInt8] = (0...255).map { byte in
        switch byte {
        case 0x22, 0x5C, 0x0A, 0x0D, 0x09, 0x08, 0x0C: 1
        case 0..<0x20: 5
        default: 0
        }
    }

    /// Two passes: measure the escaped length (a table lookup per byte, no branch), then write it in
    /// one reservation, copying the runs between escapes whole. A body with many quotes would
    /// otherwise cost a buffer call per quote.
    static func writeEscaped(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        escapeExtra.withUnsafeBufferPointer { table in
            var extra = 0
            for byte in bytes { extra &+= Int(table[Int(byte)]) }
            let length = bytes.count + extra + 2
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
                output[0] = UInt8(ascii: "\"")
                var out = 1
                var runStart = 0
                if extra > 0 {
                    for index in 0..<bytes.count {
                        let byte = bytes[index]
                        let added = table[Int(byte)]
                        if added == 0 { continue }
                        if index > runStart {
                            let run = index - runStart
                            (output.baseAddress! + out).copyMemory(from: bytes.baseAddress! + runStart, byteCount: run)
                            out += run
                        }
                        runStart = index + 1
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
                        }
                        out += Int(added) + 1
                    }
                }
                let tail = bytes.count - runStart
                if tail > 0 {
                    (output.baseAddress! + out).copyMemory(from: bytes.baseAddress! + runStart, byteCount: tail)
                    out += tail
                }
                output[out] = UInt8(ascii: "\"")
                return out + 1
            }
        }
    }

    @inline(__always)
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }
}

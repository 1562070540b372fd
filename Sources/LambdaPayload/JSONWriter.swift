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

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func writeEscaped(_ bytes: some Collection<UInt8>) {
        buffer.writeInteger(UInt8(ascii: "\""))
        let handled: Void? = bytes.withContiguousStorageIfAvailable { storage in
            writeEscapedContiguous(UnsafeRawBufferPointer(storage))
        }
        if handled == nil {
            Array(bytes).withUnsafeBytes { writeEscapedContiguous($0) }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private mutating func writeEscapedContiguous(_ bytes: UnsafeRawBufferPointer) {
        var runStart = 0
        for index in 0..<bytes.count {
            let byte = bytes[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            if runStart < index {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
            }
            runStart = index + 1
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0x0A: buffer.writeStaticString("\\n")
            case 0x0D: buffer.writeStaticString("\\r")
            case 0x09: buffer.writeStaticString("\\t")
            case 0x08: buffer.writeStaticString("\\b")
            case 0x0C: buffer.writeStaticString("\\f")
            default:
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(Self.hex[Int(byte >> 4)])
                buffer.writeInteger(Self.hex[Int(byte & 0x0F)])
            }
        }
        if runStart < bytes.count {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart...]))
        }
    }
}

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

    /// Writes `"name":`, with the comma before it, in one reservation; the value written next
    /// belongs to it.
    mutating func key(_ name: String) {
        writeEscaped(name.utf8, colon: true)
        needsComma = false
    }

    /// A key that is a literal of the payload's format (ASCII letters, digits and `_`, nothing to
    /// escape): written as it is, without the escaping pass.
    mutating func key(literal name: StaticString) {
        assert(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount).allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C })
        let comma = needsComma
        let count = name.utf8CodeUnitCount
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count + 4) { output in
            var out = 0
            if comma {
                output[0] = UInt8(ascii: ",")
                out = 1
            }
            output[out] = UInt8(ascii: "\"")
            UnsafeMutableRawBufferPointer(rebasing: output[(out + 1)...]).copyMemory(from: UnsafeRawBufferPointer(start: name.utf8Start, count: count))
            out += count + 1
            output[out] = UInt8(ascii: "\"")
            output[out + 1] = UInt8(ascii: ":")
            return out + 2
        }
        needsComma = false
    }

    // MARK: Members

    mutating func member(literal name: StaticString, _ value: String) {
        key(literal: name)
        string(value)
    }

    mutating func member(literal name: StaticString, _ value: Bool) {
        key(literal: name)
        bool(value)
    }

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
        writeEscaped(value.utf8, colon: false)
        needsComma = true
    }

    /// A string escaped beforehand: its bytes are copied.
    mutating func string(_ value: PreEscapedString) {
        separate()
        buffer.writeImmutableBuffer(value.json)
        needsComma = true
    }

    /// A JSON string from bytes the caller has checked to be valid UTF-8.
    mutating func string(utf8 bytes: some Collection<UInt8>) {
        writeEscaped(bytes, colon: false)
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

    /// The comma this position needs, the quoted string, and `:` after a key: one buffer call.
    private mutating func writeEscaped(_ bytes: some Collection<UInt8>, colon: Bool) {
        let comma = needsComma
        let handled: Void? = bytes.withContiguousStorageIfAvailable { storage in
            Self.writeEscaped(UnsafeRawBufferPointer(storage), to: &buffer, comma: comma, colon: colon)
        }
        if handled == nil {
            Array(bytes).withUnsafeBytes { Self.writeEscaped($0, to: &buffer, comma: comma, colon: colon) }
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

    /// The escaped string, in one pass when its escapes fit an allowance (the usual text): room for
    /// the text as it is and `escapeAllowance` more bytes is reserved, and each clean word of eight
    /// bytes is tested and stored as it is read. A text with more escapes than that is written by
    /// `writeEscapedMeasured`, which measures it first (nothing of the first attempt is kept).
    ///
    /// `comma`: a `,` goes before the string; `colon`: a `:` after it (a key).
    /// Whether it took the one pass (for tests).
    @discardableResult
    static func writeEscaped(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer, comma: Bool = false, colon: Bool = false) -> Bool {
        let count = bytes.count
        let written = escapeExtra.withUnsafeBufferPointer { table in
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count + 4 + escapeAllowance) { output in
                // An empty text has no address, and none is read: the output's stands in.
                guard let target = output.baseAddress else { return 0 }
                let base = bytes.baseAddress ?? UnsafeRawPointer(target)
                var out = openString(comma: comma, in: output)
                // Bytes of room beyond the rest of the text and the closing `":`: what escapes may add.
                var slack = output.count - out - count - 2
                var index = 0
                while index < count {
                    if index + 8 <= count {
                        let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                        if !hasByteToEscape(word) {
                            target.storeBytes(of: word, toByteOffset: out, as: UInt64.self)
                            out += 8
                            index += 8
                            continue
                        }
                    }
                    let byte = base.load(fromByteOffset: index, as: UInt8.self)
                    let added = Int(table[Int(byte)])
                    index += 1
                    if added == 0 {
                        output[out] = byte
                        out += 1
                        continue
                    }
                    guard slack >= added else { return 0 }
                    slack -= added
                    out += writeEscape(of: byte, to: target + out)
                }
                return closeString(colon: colon, in: output, at: out)
            }
        }
        guard written > 0 else {
            writeEscapedMeasured(bytes, to: &buffer, comma: comma, colon: colon)
            return false
        }
        return true
    }

    /// `,` when `comma`, then the opening quote; where the text goes.
    @inline(__always)
    private static func openString(comma: Bool, in output: UnsafeMutableRawBufferPointer) -> Int {
        var out = 0
        if comma {
            output[0] = UInt8(ascii: ",")
            out = 1
        }
        output[out] = UInt8(ascii: "\"")
        return out + 1
    }

    /// The closing quote at `out`, then `:` when `colon`; the length written in all.
    @inline(__always)
    private static func closeString(colon: Bool, in output: UnsafeMutableRawBufferPointer, at out: Int) -> Int {
        output[out] = UInt8(ascii: "\"")
        guard colon else { return out + 1 }
        output[out + 1] = UInt8(ascii: ":")
        return out + 2
    }

    /// What escapes may add to a string written in one pass: 32 quotes, or six control bytes.
    static let escapeAllowance = 32

    /// `\` and the escape of `byte` (one that needs one), at `out`; how many bytes that took.
    @inline(__always)
    private static func writeEscape(of byte: UInt8, to out: UnsafeMutableRawPointer) -> Int {
        out.storeBytes(of: UInt8(ascii: "\\"), as: UInt8.self)
        let second: UInt8
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): second = byte
        case 0x0A: second = UInt8(ascii: "n")
        case 0x0D: second = UInt8(ascii: "r")
        case 0x09: second = UInt8(ascii: "t")
        case 0x08: second = UInt8(ascii: "b")
        case 0x0C: second = UInt8(ascii: "f")
        default:
            out.storeBytes(of: UInt8(ascii: "u"), toByteOffset: 1, as: UInt8.self)
            out.storeBytes(of: UInt8(ascii: "0"), toByteOffset: 2, as: UInt8.self)
            out.storeBytes(of: UInt8(ascii: "0"), toByteOffset: 3, as: UInt8.self)
            out.storeBytes(of: hexDigit(byte >> 4), toByteOffset: 4, as: UInt8.self)
            out.storeBytes(of: hexDigit(byte & 0x0F), toByteOffset: 5, as: UInt8.self)
            return 6
        }
        out.storeBytes(of: second, toByteOffset: 1, as: UInt8.self)
        return 2
    }

    /// Two passes: measure the escaped length, then write it in one reservation, copying the runs
    /// between escapes whole. Both passes look at eight bytes at a time and go byte by byte only
    /// through a word that holds a byte to escape (`hasByteToEscape`). For a text with more escapes
    /// than `writeEscaped`'s one pass has room for (a body with many quotes would otherwise cost a
    /// buffer call per quote).
    static func writeEscapedMeasured(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer, comma: Bool = false, colon: Bool = false) {
        escapeExtra.withUnsafeBufferPointer { table in
            let count = bytes.count
            var extra = 0
            var index = 0
            if let base = bytes.baseAddress {
                while index + 8 <= count {
                    if hasByteToEscape(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                        for offset in index..<index + 8 { extra &+= Int(table[Int(bytes[offset])]) }
                    }
                    index += 8
                }
            }
            while index < count {
                extra &+= Int(table[Int(bytes[index])])
                index += 1
            }
            let length = count + extra + 4
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
                var out = openString(comma: comma, in: output)
                var runStart = 0
                if extra > 0, let base = bytes.baseAddress {
                    var index = 0
                    while index < count {
                        if index + 8 <= count, !hasByteToEscape(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                            index += 8
                            continue
                        }
                        let byte = bytes[index]
                        let added = table[Int(byte)]
                        index += 1
                        if added == 0 { continue }
                        let escaped = index - 1
                        if escaped > runStart {
                            let run = escaped - runStart
                            (output.baseAddress! + out).copyMemory(from: base + runStart, byteCount: run)
                            out += run
                        }
                        runStart = index
                        out += writeEscape(of: byte, to: output.baseAddress! + out)
                    }
                }
                let tail = count - runStart
                if tail > 0 {
                    (output.baseAddress! + out).copyMemory(from: bytes.baseAddress! + runStart, byteCount: tail)
                    out += tail
                }
                return closeString(colon: colon, in: output, at: out)
            }
        }
    }

    /// Whether eight bytes hold a control byte, `"` or a backslash (`WordBytes`: exact for the word
    /// as a whole, so a caller that finds one checks each byte).
    @inline(__always)
    static func hasByteToEscape(_ word: UInt64) -> Bool {
        // Flipping bit 1 keeps 0x00–0x1F among themselves and makes `"` (0x22) 0x20: the bytes
        // below 0x21 after it are exactly the control bytes and the quote (one test for both).
        let controlsAndQuotes = WordBytes.lanes(of: word ^ (WordBytes.ones &* 0x02), below: 0x21)
        let backslashes = WordBytes.lanes(of: word, equalTo: UInt8(ascii: "\\"))
        return (controlsAndQuotes | backslashes) != 0
    }

    @inline(__always)
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }
}

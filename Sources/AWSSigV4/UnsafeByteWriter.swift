/// Writes bytes one piece after another into memory the caller has already sized, such as the
/// `Authorization` value built in place by `String(unsafeUninitializedCapacity:)`. The caller
/// computes the exact length from the same pieces; nothing here checks it.
struct UnsafeByteWriter {
    let start: UnsafeMutablePointer<UInt8>
    private(set) var cursor: UnsafeMutablePointer<UInt8>

    init(_ start: UnsafeMutablePointer<UInt8>) {
        self.start = start
        self.cursor = start
    }

    /// How many bytes have been written.
    var count: Int { cursor - start }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        UnsafeMutableRawPointer(cursor).copyMemory(from: base, byteCount: bytes.count)
        cursor += bytes.count
    }

    mutating func write(_ text: StaticString) {
        write(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    mutating func write(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { write($0) }
    }

    mutating func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Lower-case hex of `bytes`: two bytes written per byte.
    mutating func writeHex(_ bytes: some ContiguousBytesLike) {
        bytes.withUnsafeBytes { raw in
            Hex.write(raw, to: cursor)
            cursor += 2 * raw.count
        }
    }
}

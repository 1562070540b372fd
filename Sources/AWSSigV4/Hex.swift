import Crypto

/// Lower-case hexadecimal, as SigV4 writes hashes and signatures.
enum Hex {
    @inline(__always)
    static func digit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    /// Writes `2 * bytes.count` digits at `out`.
    @inline(__always)
    static func write(_ bytes: UnsafeRawBufferPointer, to out: UnsafeMutablePointer<UInt8>) {
        var cursor = out
        for byte in bytes {
            cursor[0] = digit(byte >> 4)
            cursor[1] = digit(byte & 0x0F)
            cursor += 2
        }
    }

    /// `bytes` is a digest or MAC (`ContiguousBytes`); iterating those as a `Sequence` would copy them.
    static func encode(_ bytes: some ContiguousBytesLike) -> String {
        bytes.withUnsafeBytes { raw in
            String(unsafeUninitializedCapacity: raw.count * 2) { out in
                write(raw, to: out.baseAddress!)
                return raw.count * 2
            }
        }
    }

    static func append(_ bytes: some ContiguousBytesLike, to out: inout [UInt8]) {
        bytes.withUnsafeBytes { raw in
            // 64 digits at most here (a SHA-256 digest): written on the stack, appended in one copy.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: raw.count * 2) { digits in
                write(raw, to: digits.baseAddress!)
                out.append(contentsOf: UnsafeBufferPointer(digits))
            }
        }
    }
}

/// Anything that lends its bytes contiguously: digests, MACs, arrays.
protocol ContiguousBytesLike {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension SHA256Digest: ContiguousBytesLike {}
extension Array: ContiguousBytesLike where Element == UInt8 {}

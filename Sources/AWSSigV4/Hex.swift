/// Lower-case hexadecimal, as SigV4 writes hashes and signatures.
enum Hex {
    @inline(__always)
    static func digit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    /// `bytes` is a digest or MAC (`ContiguousBytes`); iterating those as a `Sequence` would copy them.
    static func encode(_ bytes: some ContiguousBytesLike) -> String {
        var out = [UInt8]()
        out.reserveCapacity(64)
        append(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func append(_ bytes: some ContiguousBytesLike, to out: inout [UInt8]) {
        bytes.withUnsafeBytes { raw in
            let start = out.count
            out.append(contentsOf: repeatElement(0, count: raw.count * 2))
            out.withUnsafeMutableBufferPointer { buffer in
                for (index, byte) in raw.enumerated() {
                    buffer[start + 2 * index] = digit(byte >> 4)
                    buffer[start + 2 * index + 1] = digit(byte & 0x0F)
                }
            }
        }
    }
}

/// Anything that lends its bytes contiguously: digests, MACs, arrays.
protocol ContiguousBytesLike {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

import Crypto

extension SHA256Digest: ContiguousBytesLike {}
extension HashedAuthenticationCode<SHA256>: ContiguousBytesLike {}

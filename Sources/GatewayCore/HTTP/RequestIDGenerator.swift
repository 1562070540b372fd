import Atomics

/// `x-request-id` values for requests that arrive without one: UUID version 4 in form, made from a
/// random per-generator seed and a counter mixed by SplitMix64 (a bijection, so two requests of one
/// process never share an ID). No system call per request: Foundation's `UUID()` opens and reads
/// `/dev/urandom` each time on Linux, which was 2% of the gateway's CPU under load.
final class RequestIDGenerator: Sendable {
    private let seed: (UInt64, UInt64)
    private let counter = ManagedAtomic<UInt64>(0)

    init(seed: (UInt64, UInt64) = (.random(in: .min ... .max), .random(in: .min ... .max))) {
        self.seed = seed
    }

    func next() -> String {
        let n = counter.loadThenWrappingIncrement(ordering: .relaxed)
        var high = Self.mix(seed.0 &+ n)
        var low = Self.mix(seed.1 &+ n)
        high = (high & ~0xF000) | 0x4000  // version 4
        low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  // RFC 4122 variant
        return Self.format(high, low)
    }

    /// SplitMix64's finalizer.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase.
    static func format(_ high: UInt64, _ low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            let digits: StaticString = "0123456789abcdef"
            var index = 0
            func put(_ value: UInt64, nibbles: Int) {
                for shift in stride(from: (nibbles - 1) * 4, through: 0, by: -4) {
                    buffer[index] = digits.utf8Start[Int((value >> UInt64(shift)) & 0xF)]
                    index += 1
                }
            }
            func dash() {
                buffer[index] = UInt8(ascii: "-")
                index += 1
            }
            put(high >> 32, nibbles: 8)
            dash()
            put(high >> 16, nibbles: 4)
            dash()
            put(high, nibbles: 4)
            dash()
            put(low >> 48, nibbles: 4)
            dash()
            put(low, nibbles: 12)
            return index
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Comparisons on UTF-8 bytes, as Consul (Go strings) and Envoy (its string matchers and RE2)
/// compare. Swift's `String` comparisons follow canonical equivalence: `"admin"` with a combining
/// mark after its `n` is not `hasPrefix("/admin")` to Swift but is to Envoy, so a deny rule on a
/// prefix would let it through. Every match an intention makes goes through these.
extension StringProtocol {
    /// Lengths first, then the bytes in place (`memcmp`) when both have them contiguous, as native
    /// strings do: an element-by-element walk through two index-checked views cost some 500
    /// instructions per comparison, and intentions compare several names per request.
    func bytesEqual(_ other: some StringProtocol) -> Bool {
        let lhs = utf8
        let rhs = other.utf8
        guard lhs.count == rhs.count else { return false }
        let inPlace = lhs.withContiguousStorageIfAvailable { left in
            rhs.withContiguousStorageIfAvailable { right in
                left.count == 0 || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0
            }
        }
        if let inPlace, let equal = inPlace { return equal }
        return lhs.elementsEqual(rhs)
    }

    func bytesHavePrefix(_ prefix: some StringProtocol) -> Bool {
        utf8.starts(with: prefix.utf8)
    }

    func bytesHaveSuffix(_ suffix: some StringProtocol) -> Bool {
        utf8.count >= suffix.utf8.count && utf8.reversed().starts(with: suffix.utf8.reversed())
    }

    func bytesContain(_ needle: some StringProtocol) -> Bool {
        let haystack = Array(utf8)
        let pattern = Array(needle.utf8)
        guard !pattern.isEmpty else { return true }
        guard haystack.count >= pattern.count else { return false }
        for start in 0...(haystack.count - pattern.count) where haystack[start..<start + pattern.count].elementsEqual(pattern) {
            return true
        }
        return false
    }

    /// ASCII letters folded to lower case, every other byte kept: Envoy's `ignore_case`
    /// (absl's ASCII case folding), not Unicode's (which would fold the Kelvin sign to `k`).
    var asciiLowercased: String {
        String(decoding: utf8.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }
}

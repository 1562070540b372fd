/// Tests on eight bytes at a time, the has-less-than word test of "Bit Twiddling Hacks": a lane is
/// marked by its high bit. The result is exact for the word as a whole (some byte is below the
/// limit), though not lane by lane, so a caller that finds a mark checks each byte. Shared by the
/// JSON escaping and the Invoke request's framing check.
public enum WordBytes {
    public static let ones: UInt64 = 0x0101_0101_0101_0101
    public static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The high bits of the lanes of `word` below `limit` (at most 128); zero when there is none.
    @inlinable @inline(__always)
    public static func lanes(of word: UInt64, below limit: UInt8) -> UInt64 {
        (word &- ones &* UInt64(limit)) & ~word & highs
    }

    /// The high bits of the lanes of `word` equal to `byte`; zero when there is none.
    @inlinable @inline(__always)
    public static func lanes(of word: UInt64, equalTo byte: UInt8) -> UInt64 {
        lanes(of: word ^ (ones &* UInt64(byte)), below: 1)
    }
}

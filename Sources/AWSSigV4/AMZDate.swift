import struct Foundation.Date

/// The two renderings of a signing time that SigV4 uses: `20150830T123600Z` and `20150830`.
///
/// Computed arithmetically from the Unix time: a `DateFormatter` costs more than the whole signature.
public struct AMZDate: Sendable, Hashable {
    /// `yyyyMMdd'T'HHmmss'Z'`, UTC.
    public let timestamp: String
    /// `yyyyMMdd`, UTC: the credential scope's date.
    public let day: String

    public init(_ date: Date) {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = Self.civilDate(daysSinceEpoch: days)

        var bytes = [UInt8]()
        bytes.reserveCapacity(16)
        Self.appendDigits(Int(year), width: 4, to: &bytes)
        Self.appendDigits(month, width: 2, to: &bytes)
        Self.appendDigits(day, width: 2, to: &bytes)
        self.day = String(decoding: bytes, as: UTF8.self)
        bytes.append(UInt8(ascii: "T"))
        Self.appendDigits(secondOfDay / 3600, width: 2, to: &bytes)
        Self.appendDigits(secondOfDay / 60 % 60, width: 2, to: &bytes)
        Self.appendDigits(secondOfDay % 60, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: "Z"))
        self.timestamp = String(decoding: bytes, as: UTF8.self)
    }

    /// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day count since 1970-01-01
    /// (counted in 400-year eras that start on March 1st, so February's length only matters at an
    /// era-year's end). The access log's times use it too.
    public static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func appendDigits(_ value: Int, width: Int, to bytes: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
            rest %= divisor
            divisor /= 10
        }
    }
}

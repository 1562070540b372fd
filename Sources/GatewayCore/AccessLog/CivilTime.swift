/// A `WallClockTime` as a UTC calendar date and time of day, computed with integer arithmetic only,
/// so that an access-log line costs no `DateFormatter`, no `gmtime_r` and no allocation.
struct CivilTime: Hashable {
    var year: Int64
    /// 1...12
    var month: Int
    /// 1...31
    var day: Int
    var hour: Int
    var minute: Int
    var second: Int
    /// 0..<1_000_000_000
    var nanosecond: Int
    /// 0 = Sunday ... 6 = Saturday
    var weekday: Int
    /// 1...366
    var dayOfYear: Int
    /// Whole seconds since the epoch, rounded down (so before 1970 too, `nanosecond` is what follows).
    var epochSeconds: Int64

    init(_ time: WallClockTime) {
        let nanos = time.nanosecondsSinceEpoch
        let (seconds, nanosecond) = Self.floorDivide(nanos, 1_000_000_000)
        let (days, secondOfDay) = Self.floorDivide(seconds, 86_400)
        epochSeconds = seconds
        self.nanosecond = Int(nanosecond)
        hour = Int(secondOfDay / 3600)
        minute = Int(secondOfDay / 60 % 60)
        second = Int(secondOfDay % 60)
        // 1970-01-01 was a Thursday.
        weekday = Int(Self.floorDivide(days + 4, 7).remainder)
        (year, month, day) = Self.civil(fromDays: days)
        dayOfYear = Self.daysBeforeMonth[month - 1] + day + (month > 2 && Self.isLeapYear(year) ? 1 : 0)
    }

    /// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date `days` after 1970-01-01,
    /// counted in 400-year eras that start on March 1st, so February's length only matters at an
    /// era-year's end. (`AMZDate` in AWSSigV4 has the same algorithm; GatewayCore does not link it.)
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, Int(month), Int(day))
    }

    static func isLeapYear(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    /// Days in a common year before the first of each month.
    private static let daysBeforeMonth = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]

    /// Division rounding toward minus infinity, with a remainder in `0..<divisor`.
    static func floorDivide(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let quotient = value / divisor
        let remainder = value % divisor
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }
}

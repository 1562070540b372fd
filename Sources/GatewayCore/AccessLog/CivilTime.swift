import AWSSigV4

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
        (year, month, day) = AMZDate.civilDate(daysSinceEpoch: days)
        dayOfYear = Self.daysBeforeMonth[month - 1] + day + (month > 2 && Self.isLeapYear(year) ? 1 : 0)
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

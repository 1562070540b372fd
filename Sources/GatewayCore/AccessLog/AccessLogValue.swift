/// What one operator found in an entry, before it is written: the renderer decides how (escaped
/// text, a JSON number or string, `-` or `null`). Text values are slices of the entry's own
/// strings, so resolving one allocates nothing.
enum AccessLogValue {
    /// Not known: `-` in text, `null` as a whole JSON value.
    case missing
    /// A JSON number when it is a member's whole value.
    case number(Int64)
    case text(Substring)
    case startTime(WallClockTime, AccessLogTimeFormat)
    case flags(ResponseFlags)

    /// A string field of the entry: nil and empty are both unknown, as Envoy writes `-` for an empty
    /// route name, SNI, peer SAN or failure reason.
    static func string(_ value: String?) -> AccessLogValue {
        guard let value, !value.isEmpty else { return .missing }
        return .text(Substring(value))
    }

    static func number(_ value: Int?) -> AccessLogValue {
        value.map { .number(Int64($0)) } ?? .missing
    }

    /// A duration in whole milliseconds, cut as Envoy's `duration_cast` cuts it.
    static func milliseconds(_ value: Duration?) -> AccessLogValue {
        guard let value else { return .missing }
        let (seconds, attoseconds) = value.components
        let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return .number(seconds < 0 ? .min : .max) }
        return .number(milliseconds &+ attoseconds / 1_000_000_000_000_000)
    }
}

/// Go's `time.Duration` text, as Consul prints config-entry durations (Go's `time.ParseDuration` documentation):
/// an optional sign, then `<decimal>[.<fraction>]<unit>` runs with units `ns us µs μs ms s m h`.
public enum GoDuration {
    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public var input: String
        public var description: String { "invalid duration \"\(input)\"" }
    }

    /// Parses `1m30s`, `1.5s`, `500ms`, `250µs`, `-2h`, `0`. The empty string is zero ("unset").
    public static func parse(_ text: String) throws(ParseError) -> Duration {
        var scalars = Substring(text).unicodeScalars[...]
        if scalars.isEmpty { return .zero }
        var negative = false
        if let first = scalars.first, first == "-" || first == "+" {
            negative = first == "-"
            scalars = scalars.dropFirst()
        }
        if String(scalars) == "0" { return .zero }
        guard !scalars.isEmpty else { throw ParseError(input: text) }

        var totalNanoseconds: Double = 0
        while !scalars.isEmpty {
            let whole = scalars.prefix { ("0"..."9").contains($0) }
            scalars = scalars.dropFirst(whole.count)
            var fraction = Substring.UnicodeScalarView()[...]
            if scalars.first == "." {
                scalars = scalars.dropFirst()
                fraction = scalars.prefix { ("0"..."9").contains($0) }
                scalars = scalars.dropFirst(fraction.count)
            }
            guard !whole.isEmpty || !fraction.isEmpty else { throw ParseError(input: text) }
            let unitText = String(scalars.prefix { !("0"..."9").contains($0) && $0 != "." })
            scalars = scalars.dropFirst(unitText.unicodeScalars.count)
            guard let unit = units[unitText] else { throw ParseError(input: text) }
            let value = Double("\(whole.isEmpty ? "0" : String(whole)).\(fraction.isEmpty ? "0" : String(fraction))")!
            totalNanoseconds += value * unit
        }
        // Go's limit: the total must fit Int64 nanoseconds (about 292 years). Anything from 2^63 on
        // (e.g. `2562048h`) would trap in the conversion below.
        guard totalNanoseconds < 0x1p63 else { throw ParseError(input: text) }
        let nanoseconds = Int64(totalNanoseconds.rounded())
        return .nanoseconds(negative ? -nanoseconds : nanoseconds)
    }

    private static let units: [String: Double] = [
        "ns": 1, "us": 1e3, "\u{00B5}s": 1e3, "\u{03BC}s": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9,
    ]

    /// Go's `Duration.String()` for whole milliseconds and up, as sent in `wait=` (e.g. `300000ms`).
    public static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }
}

/// How `%START_TIME%` is written: RFC 3339 with milliseconds in UTC by default, or the strftime
/// subset of `%START_TIME(pattern)%`, compiled once into fields.
///
/// Letters: `%Y %m %d %H %M %S %y %j %a %b %e %T %F %z %Z %s %%`, and Envoy's fractional seconds
/// `%f` (nine digits) and `%1f`...`%9f`, cut, never rounded, as Envoy does. The gateway logs UTC only,
/// so `%z` is `+0000` and `%Z` is `UTC`. Any other letter is refused when the format is compiled
/// rather than written through as strftime would.
struct AccessLogTimeFormat: Sendable, Hashable {
    enum Field: Sendable, Hashable {
        case literal([UInt8])
        /// At least four digits.
        case year
        case twoDigitYear
        case month
        case day
        /// `%e`: the day padded with a space.
        case spacePaddedDay
        case hour
        case minute
        case second
        case dayOfYear
        case weekdayName
        case monthName
        case epochSeconds
        case fraction(digits: Int)
    }

    let fields: [Field]

    /// Envoy's default, `2026-12-06T14:33:14.123Z`.
    static let rfc3339Milliseconds = AccessLogTimeFormat(fields: [
        .year, .literal(Array("-".utf8)), .month, .literal(Array("-".utf8)), .day, .literal(Array("T".utf8)),
        .hour, .literal(Array(":".utf8)), .minute, .literal(Array(":".utf8)), .second, .literal(Array(".".utf8)),
        .fraction(digits: 3), .literal(Array("Z".utf8)),
    ])

    private init(fields: [Field]) {
        self.fields = fields
    }

    /// Compiles the pattern of `%START_TIME(pattern)%`.
    init(pattern: String) throws(AccessLogFormatError) {
        let bytes = Array(pattern.utf8)
        var fields: [Field] = []
        func literal(_ text: String) { Self.append(.literal(Array(text.utf8)), to: &fields) }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            guard byte == UInt8(ascii: "%") else {
                Self.append(.literal([byte]), to: &fields)
                continue
            }
            guard index < bytes.count else {
                throw AccessLogFormatError(.unsupportedTimeSpecifier, "START_TIME pattern \"\(LogSafe.text(pattern, limit: 64))\" ends with a lone %")
            }
            let letter = bytes[index]
            index += 1
            switch letter {
            case UInt8(ascii: "Y"): fields.append(.year)
            case UInt8(ascii: "y"): fields.append(.twoDigitYear)
            case UInt8(ascii: "m"): fields.append(.month)
            case UInt8(ascii: "d"): fields.append(.day)
            case UInt8(ascii: "e"): fields.append(.spacePaddedDay)
            case UInt8(ascii: "H"): fields.append(.hour)
            case UInt8(ascii: "M"): fields.append(.minute)
            case UInt8(ascii: "S"): fields.append(.second)
            case UInt8(ascii: "j"): fields.append(.dayOfYear)
            case UInt8(ascii: "a"): fields.append(.weekdayName)
            case UInt8(ascii: "b"): fields.append(.monthName)
            case UInt8(ascii: "s"): fields.append(.epochSeconds)
            case UInt8(ascii: "f"): fields.append(.fraction(digits: 9))
            case UInt8(ascii: "T"):
                fields.append(.hour)
                literal(":")
                fields.append(.minute)
                literal(":")
                fields.append(.second)
            case UInt8(ascii: "F"):
                fields.append(.year)
                literal("-")
                fields.append(.month)
                literal("-")
                fields.append(.day)
            case UInt8(ascii: "z"): literal("+0000")
            case UInt8(ascii: "Z"): literal("UTC")
            case UInt8(ascii: "%"): literal("%")
            case UInt8(ascii: "1")...UInt8(ascii: "9") where index < bytes.count && bytes[index] == UInt8(ascii: "f"):
                index += 1
                fields.append(.fraction(digits: Int(letter - UInt8(ascii: "0"))))
            default:
                let specifier = LogSafe.text(String(String(decoding: bytes[(index - 2)...], as: UTF8.self).prefix(2)))
                throw AccessLogFormatError(.unsupportedTimeSpecifier, "START_TIME pattern \"\(LogSafe.text(pattern, limit: 64))\" uses \(specifier), which the gateway does not write")
            }
        }
        self.fields = fields
    }

    /// Appends a literal, joined to the literal before it.
    private static func append(_ field: Field, to fields: inout [Field]) {
        if case .literal(let added) = field, case .literal(let previous)? = fields.last {
            fields[fields.count - 1] = .literal(previous + added)
        } else {
            fields.append(field)
        }
    }

    /// Writes `time` in this format at the end of `buffer` (as is: the caller escapes it).
    func append(_ time: WallClockTime, to buffer: inout [UInt8]) {
        let civil = CivilTime(time)
        for field in fields {
            switch field {
            case .literal(let bytes): buffer.append(contentsOf: bytes)
            case .year: AccessLogRenderer.appendDecimal(civil.year, width: 4, to: &buffer)
            case .twoDigitYear: AccessLogRenderer.appendDecimal(CivilTime.floorDivide(civil.year, 100).remainder, width: 2, to: &buffer)
            case .month: AccessLogRenderer.appendDecimal(Int64(civil.month), width: 2, to: &buffer)
            case .day: AccessLogRenderer.appendDecimal(Int64(civil.day), width: 2, to: &buffer)
            case .spacePaddedDay:
                if civil.day < 10 { buffer.append(UInt8(ascii: " ")) }
                AccessLogRenderer.appendDecimal(Int64(civil.day), to: &buffer)
            case .hour: AccessLogRenderer.appendDecimal(Int64(civil.hour), width: 2, to: &buffer)
            case .minute: AccessLogRenderer.appendDecimal(Int64(civil.minute), width: 2, to: &buffer)
            case .second: AccessLogRenderer.appendDecimal(Int64(civil.second), width: 2, to: &buffer)
            case .dayOfYear: AccessLogRenderer.appendDecimal(Int64(civil.dayOfYear), width: 3, to: &buffer)
            case .weekdayName: buffer.append(contentsOf: Self.weekdayNames[civil.weekday])
            case .monthName: buffer.append(contentsOf: Self.monthNames[civil.month - 1])
            case .epochSeconds: AccessLogRenderer.appendDecimal(civil.epochSeconds, to: &buffer)
            case .fraction(let digits):
                var scaled = civil.nanosecond
                for _ in digits..<9 { scaled /= 10 }
                AccessLogRenderer.appendDecimal(Int64(scaled), width: digits, to: &buffer)
            }
        }
    }

    private static let weekdayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].map { Array($0.utf8) }
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map { Array($0.utf8) }
}

import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The gateway's own log as JSON lines on standard error (`--log-format json`), for log shippers:
/// `{"time":"2026-12-06T14:33:14.123Z","level":"info","message":"...","label":"lambda-gateway",...}`
/// with each metadata value as a field of its own (a field named like one of the four is
/// prefixed `meta_`). One `write(2)` per line, so lines from several threads never interleave.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: Int32

    public init(label: String, output: Int32 = STDERR_FILENO) {
        self.label = label
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        var line = Self.line(time: Date(), level: level, message: "\(message)", label: label, metadata: merged(explicit))
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(output, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }

    private func merged(_ explicit: Logger.Metadata?) -> Logger.Metadata {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit { all.merge(explicit) { _, new in new } }
        return all
    }

    /// One line, ending in `\n`; metadata keys sorted, so lines compare in tests and diffs.
    static func line(time: Date, level: Logger.Level, message: String, label: String, metadata: Logger.Metadata) -> String {
        var line = "{\"time\":\"\(timestamp(time))\",\"level\":\"\(level.rawValue)\",\"message\":"
        appendString(message, to: &line)
        line += ",\"label\":"
        appendString(label, to: &line)
        for key in metadata.keys.sorted() {
            line += ","
            appendString(["time", "level", "message", "label"].contains(key) ? "meta_\(key)" : key, to: &line)
            line += ":"
            appendValue(metadata[key]!, to: &line)
        }
        line += "}\n"
        return line
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text): appendString(text, to: &line)
        case .stringConvertible(let convertible): appendString(convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                appendValue(element, to: &line)
            }
            line += "]"
        case .dictionary(let values):
            line += "{"
            for (index, key) in values.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                appendString(key, to: &line)
                line += ":"
                appendValue(values[key]!, to: &line)
            }
            line += "}"
        }
    }

    /// A JSON string: `"` and `\` escaped, control characters as `\uXXXX`.
    static func appendString(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                line += String(format: "\\u%04x", scalar.value)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// RFC 3339 in UTC with milliseconds, as the access log writes `%START_TIME%`.
    static func timestamp(_ date: Date) -> String {
        var bytes: [UInt8] = []
        // Whole milliseconds first: the nanoseconds of a Double's product fall a hair short of them.
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        AccessLogTimeFormat.rfc3339Milliseconds.append(WallClockTime(nanosecondsSinceEpoch: milliseconds * 1_000_000), to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

import LambdaPayload

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Compiles a `TextFormat` or `JSONFormat` (docs/COMPATIBILITY.md, `AccessLogs`) into segments, once, so that
/// rendering a line parses nothing.
///
/// Envoy's command syntax: `%NAME%`, `%NAME(argument)%`, `%NAME(argument):N%`, and `%%` for a
/// literal percent. The argument ends at the first `)`.
struct AccessLogFormatParser {
    /// `%HOSTNAME%`'s value: injected, or the machine's, read the first time an operator needs it.
    private var hostName: String?

    init(hostName: String?) {
        self.hostName = hostName
    }

    // MARK: Formats

    /// A text line: the format's operators with its trailing newlines dropped and exactly one added,
    /// as Consul adds one when the format lacks it.
    mutating func compileText(_ format: String) throws(AccessLogFormatError) -> [AccessLogSegment] {
        var bytes = Array(format.utf8)
        while bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        var segments: [AccessLogSegment] = []
        for segment in try parseTemplate(bytes) { Self.append(segment, to: &segments) }
        Self.append(.literal([UInt8(ascii: "\n")]), to: &segments)
        return segments
    }

    /// One compact JSON object per line, members in the format's order. A string value that is one
    /// operator alone becomes that operator's typed value (a number, a string or `null`); a string
    /// mixing text and operators stays a string; numbers, booleans and `null` are copied; nested
    /// objects are compiled alike.
    mutating func compileJSON(_ format: String) throws(AccessLogFormatError) -> [AccessLogSegment] {
        let document: JSONValue
        do {
            document = try JSONParser.parse(format.utf8)
        } catch {
            throw AccessLogFormatError(.invalidJSON, "JSONFormat is not valid JSON: \(error.description)")
        }
        guard case .object(let members) = document else {
            throw AccessLogFormatError(.jsonNotAnObject, "JSONFormat must be a JSON object, not \(Self.kind(of: document))")
        }
        var segments: [AccessLogSegment] = []
        try appendObject(members, path: nil, to: &segments)
        Self.append(.literal([UInt8(ascii: "\n")]), to: &segments)
        return segments
    }

    private mutating func appendObject(_ members: [JSONMember], path: String?, to segments: inout [AccessLogSegment]) throws(AccessLogFormatError) {
        Self.append(.literal([UInt8(ascii: "{")]), to: &segments)
        for (index, member) in members.enumerated() {
            let memberPath = path.map { "\($0).\(member.name)" } ?? member.name
            var key: [UInt8] = index == 0 ? [] : [UInt8(ascii: ",")]
            key.append(UInt8(ascii: "\""))
            AccessLogRenderer.appendJSONEscaped(Array(member.name.utf8), to: &key)
            key.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
            Self.append(.literal(key), to: &segments)
            switch member.value {
            case .string(let template):
                do {
                    try appendJSONString(template, to: &segments)
                } catch {
                    throw AccessLogFormatError(error.code, error.message, jsonKey: memberPath)
                }
            case .object(let nested):
                try appendObject(nested, path: memberPath, to: &segments)
            case .number, .bool, .null:
                Self.append(.literal(Array(member.value.jsonText.utf8)), to: &segments)
            case .array:
                throw AccessLogFormatError(.unsupportedJSONValue, "an array is not a format value; use a string, a number, a boolean or an object", jsonKey: memberPath)
            }
        }
        Self.append(.literal([UInt8(ascii: "}")]), to: &segments)
    }

    private mutating func appendJSONString(_ template: String, to segments: inout [AccessLogSegment]) throws(AccessLogFormatError) {
        let parts = try parseTemplate(Array(template.utf8))
        if parts.count == 1, case .text(let op, let maxLength) = parts[0] {
            Self.append(.jsonValue(op, maxLength: maxLength), to: &segments)
            return
        }
        Self.append(.literal([UInt8(ascii: "\"")]), to: &segments)
        for part in parts {
            switch part {
            case .literal(let bytes):
                var escaped: [UInt8] = []
                AccessLogRenderer.appendJSONEscaped(bytes, to: &escaped)
                Self.append(.literal(escaped), to: &segments)
            case .text(let op, let maxLength):
                Self.append(.jsonStringPart(op, maxLength: maxLength), to: &segments)
            case .jsonValue, .jsonStringPart:
                preconditionFailure("parseTemplate makes literals and text values only")
            }
        }
        Self.append(.literal([UInt8(ascii: "\"")]), to: &segments)
    }

    // MARK: Operators

    /// A template's literals and operators, as `.literal` and `.text` segments.
    mutating func parseTemplate(_ bytes: [UInt8]) throws(AccessLogFormatError) -> [AccessLogSegment] {
        var segments: [AccessLogSegment] = []
        var literal: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte != Self.percent {
                literal.append(byte)
                index += 1
            } else if index + 1 < bytes.count && bytes[index + 1] == Self.percent {
                literal.append(Self.percent)
                index += 2
            } else {
                let (op, maxLength, end) = try parseOperator(bytes, at: index)
                if !literal.isEmpty { segments.append(.literal(literal)) }
                literal = []
                segments.append(.text(op, maxLength: maxLength))
                index = end
            }
        }
        if !literal.isEmpty { segments.append(.literal(literal)) }
        return segments
    }

    /// The operator whose `%` is at `start`, its `:N`, and the index after its closing `%`.
    private mutating func parseOperator(_ bytes: [UInt8], at start: Int) throws(AccessLogFormatError) -> (AccessLogOperator, Int?, Int) {
        func unterminated(_ missing: String) -> AccessLogFormatError {
            let written = LogSafe.text(String(decoding: bytes[start...], as: UTF8.self), limit: 64)
            return AccessLogFormatError(.unterminatedOperator, "unterminated access-log operator \(written) (no closing \(missing))")
        }
        var index = start + 1
        while index < bytes.count && Self.isNameByte(bytes[index]) { index += 1 }
        let name = String(decoding: bytes[(start + 1)..<index], as: UTF8.self)
        guard !name.isEmpty else {
            guard index < bytes.count else {
                throw AccessLogFormatError(.unterminatedOperator, "unterminated access-log operator: the format ends with a lone %; write %% for a literal percent")
            }
            throw AccessLogFormatError(.malformedOperator, "the % at byte \(start) starts no access-log operator; write %% for a literal percent")
        }
        var argument: String?
        if index < bytes.count && bytes[index] == UInt8(ascii: "(") {
            guard let close = bytes[index...].firstIndex(of: UInt8(ascii: ")")) else { throw unterminated("\")\"") }
            argument = String(decoding: bytes[(index + 1)..<close], as: UTF8.self)
            index = close + 1
        }
        var lengthDigits: Range<Int>?
        if index < bytes.count && bytes[index] == UInt8(ascii: ":") {
            let digitsStart = index + 1
            index = digitsStart
            while index < bytes.count && bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9") { index += 1 }
            lengthDigits = digitsStart..<index
        }
        guard index < bytes.count else { throw unterminated("%") }
        guard bytes[index] == Self.percent else {
            let written = LogSafe.text(String(decoding: bytes[start..<index], as: UTF8.self), limit: 64)
            let found = LogSafe.text(String(decoding: bytes[index...], as: UTF8.self).prefix(1))
            throw AccessLogFormatError(.malformedOperator, "access-log operator \(written) is followed by \"\(found)\" where its closing % should be")
        }
        let written = LogSafe.text(String(decoding: bytes[start...index], as: UTF8.self), limit: 64)
        var maxLength: Int?
        if let lengthDigits {
            guard (1...9).contains(lengthDigits.count), let length = Int(String(decoding: bytes[lengthDigits], as: UTF8.self)) else {
                throw AccessLogFormatError(.invalidMaxLength, "access-log operator \(written) needs a length of 1 to 9 digits after \":\"")
            }
            maxLength = length
        }
        return (try makeOperator(name, argument: argument, written: written), maxLength, index + 1)
    }

    private mutating func makeOperator(_ name: String, argument: String?, written: String) throws(AccessLogFormatError) -> AccessLogOperator {
        switch name {
        case "START_TIME":
            guard let argument, !argument.isEmpty else { return .startTime(.rfc3339Milliseconds) }
            return .startTime(try AccessLogTimeFormat(pattern: argument))
        case "REQ", "RESP":
            guard let argument, !argument.isEmpty else {
                throw AccessLogFormatError(.missingHeaderName, "access-log operator \(written) needs a header name: %\(name)(USER-AGENT)%")
            }
            let choice = try AccessLogHeaderChoice(argument: argument, ofResponse: name == "RESP", written: written)
            return name == "REQ" ? .requestHeader(choice) : .responseHeader(choice)
        case "HOSTNAME":
            guard argument == nil else { throw Self.unexpectedArgument(written) }
            if hostName == nil { hostName = Self.machineHostName() }
            return .hostName(hostName ?? "")
        default:
            guard let op = AccessLogOperator.withoutArgument[name] else {
                throw AccessLogFormatError(.unknownOperator, "unknown access-log operator \(written)")
            }
            guard argument == nil else { throw Self.unexpectedArgument(written) }
            return op
        }
    }

    private static func unexpectedArgument(_ written: String) -> AccessLogFormatError {
        AccessLogFormatError(.unexpectedArgument, "access-log operator \(written) takes no argument")
    }

    // MARK: Helpers

    private static let percent = UInt8(ascii: "%")

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"): true
        default: false
        }
    }

    /// Appends `segment`, joining a literal to the literal before it.
    private static func append(_ segment: AccessLogSegment, to segments: inout [AccessLogSegment]) {
        if case .literal(let added) = segment, case .literal(let previous)? = segments.last {
            segments[segments.count - 1] = .literal(previous + added)
        } else {
            segments.append(segment)
        }
    }

    private static func kind(of value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// The machine's host name (`gethostname`, no DNS), empty when it cannot be read.
    static func machineHostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Why an access-log format (Consul's `TextFormat` or `JSONFormat`: docs/COMPATIBILITY.md, `AccessLogs`) cannot be
/// compiled. The message names what was wrong: the operator as written, the strftime letter, the
/// JSON key.
public struct AccessLogFormatError: Error, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// A command operator Envoy would not know either (`%FOO%`).
        case unknownOperator
        /// A `%` whose operator never ends (`%REQ(`, `%DURATION`).
        case unterminatedOperator
        /// A `%` that starts no operator, or an operator with something unexpected before its closing `%`.
        case malformedOperator
        /// `%REQ()%`, `%RESP%`, `%REQ(A?)%`: a header operator without a header name.
        case missingHeaderName
        /// An argument given to an operator that takes none (`%PROTOCOL(x)%`).
        case unexpectedArgument
        /// `:N` that is not a number (`%REQ(A):x%`).
        case invalidMaxLength
        /// A `START_TIME(...)` pattern with a strftime letter the gateway does not write.
        case unsupportedTimeSpecifier
        /// `JSONFormat` is not JSON.
        case invalidJSON
        /// `JSONFormat` is JSON but not an object.
        case jsonNotAnObject
        /// A `JSONFormat` member whose value is an array.
        case unsupportedJSONValue
    }

    public var code: Code
    /// What was wrong, naming the operator or the letter as written.
    public var message: String
    /// Where in a `JSONFormat` the error is (`"a.b"` for a nested member); nil in a text format.
    public var jsonKey: String?

    public init(_ code: Code, _ message: String, jsonKey: String? = nil) {
        self.code = code
        self.message = message
        self.jsonKey = jsonKey
    }

    public var description: String {
        guard let jsonKey else { return message }
        return "JSONFormat member \"\(LogSafe.text(jsonKey, limit: 64))\": \(message)"
    }
}

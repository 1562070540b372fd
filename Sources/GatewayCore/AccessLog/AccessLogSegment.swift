/// One piece of a compiled access-log format: bytes copied as they are, or an operator's value
/// written as its place in the line asks. `maxLength` is the `:N` of `%REQ(X):N%`: the value's text
/// is cut to at most N bytes (never inside a UTF-8 character) before it is escaped; a typed JSON
/// number is not cut.
enum AccessLogSegment: Sendable, Hashable {
    /// Bytes copied as they are: the format's own text, already JSON-escaped in a JSON format.
    case literal([UInt8])
    /// A value in a text line: network bytes escaped as `LogSafe` does (without its cap), `-` when missing.
    case text(AccessLogOperator, maxLength: Int?)
    /// A JSON member's whole value: a number for a numeric operator, a string, or `null` when missing.
    case jsonValue(AccessLogOperator, maxLength: Int?)
    /// A part of a JSON string that mixes literals and operators: JSON-escaped, `-` when missing.
    case jsonStringPart(AccessLogOperator, maxLength: Int?)

    var `operator`: AccessLogOperator? {
        switch self {
        case .literal: nil
        case .text(let op, _), .jsonValue(let op, _), .jsonStringPart(let op, _): op
        }
    }
}

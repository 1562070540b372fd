/// A Lambda function ARN, validated with the project's pattern (docs/COMPATIBILITY.md, Config entries):
/// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
///
/// An immutable object rather than a struct: an ARN rides along in every Invoke call and in the
/// service settings a request copies, and one reference is cheaper to copy than its six strings.
/// Two ARNs are equal when their texts are (the parts are read from the text).
public final class FunctionARN: Sendable, Hashable, CustomStringConvertible {
    public let partition: String
    public let region: String
    public let accountID: String
    public let functionName: String
    /// A version number, an alias, or `$LATEST`.
    public let qualifier: String?
    /// The ARN as text, kept from parsing: it names the function in every Invoke call.
    public let description: String

    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public var input: String
        public var reason: String
        public var description: String { "invalid function ARN \"\(input)\": \(reason)" }
    }

    public init(parsing text: String) throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError(input: text, reason: reason) }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 7 || parts.count == 8 else {
            throw fail("expected arn:<partition>:lambda:<region>:<account-id>:function:<name>[:<qualifier>]")
        }
        guard parts[0] == "arn", parts[2] == "lambda", parts[5] == "function" else {
            throw fail("not a Lambda function ARN")
        }
        guard parts[1].hasPrefix("aws"), parts[1].utf8.allSatisfy({ Self.isLetter($0) || $0 == UInt8(ascii: "-") }) else {
            throw fail("unknown partition \"\(parts[1])\"")
        }
        guard Self.isRegion(parts[3]) else { throw fail("\"\(parts[3])\" is not a region") }
        guard parts[4].utf8.count == 12, parts[4].utf8.allSatisfy(Self.isDigit) else {
            throw fail("the account id must be 12 digits")
        }
        guard (1...64).contains(parts[6].utf8.count), parts[6].utf8.allSatisfy(Self.isNameByte) else {
            throw fail("the function name must be 1 to 64 letters, digits, '-' or '_'")
        }
        if parts.count == 8 {
            let qualifier = parts[7]
            guard qualifier == "$LATEST" || ((1...128).contains(qualifier.utf8.count) && qualifier.utf8.allSatisfy(Self.isNameByte)) else {
                throw fail("the qualifier must be $LATEST or 1 to 128 letters, digits, '-' or '_'")
            }
        }
        partition = parts[1]
        region = parts[3]
        accountID = parts[4]
        functionName = parts[6]
        qualifier = parts.count == 8 ? parts[7] : nil
        description = text
    }

    public static func == (lhs: FunctionARN, rhs: FunctionARN) -> Bool {
        lhs === rhs || lhs.description == rhs.description
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(description)
    }

    /// `[a-z]{2}(-[a-z]+)+-[0-9]+`, e.g. `us-east-1`, `us-gov-west-1`, `us-iso-east-1`.
    static func isRegion(_ text: String) -> Bool {
        let labels = text.split(separator: "-", omittingEmptySubsequences: false)
        guard labels.count >= 3, labels[0].utf8.count == 2, labels[0].utf8.allSatisfy(isLowercase) else { return false }
        guard let last = labels.last, !last.isEmpty, last.utf8.allSatisfy(isDigit) else { return false }
        return labels.dropFirst().dropLast().allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy(isLowercase) }
    }

    static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
    static func isLowercase(_ byte: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) }
    static func isLetter(_ byte: UInt8) -> Bool { isLowercase(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) }
    static func isNameByte(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }
}

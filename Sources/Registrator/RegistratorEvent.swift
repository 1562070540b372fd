import LambdaPayload

/// One EventBridge event the registrator is invoked with (docs/COMPATIBILITY.md, What it writes: Triggers; docs/DECISIONS.md D50).
public enum RegistratorEvent: Sendable, Hashable {
    /// `aws.events` (the schedule): a full sync.
    case fullSync
    /// A CloudTrail event about one function: sync that function only. `function`: a name or ARN.
    case function(String, eventName: String)
    /// The API call the event reports failed (`detail.errorCode`): nothing to do.
    case ignored(String)

    public struct Error: Swift.Error, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { message }

        public init(message: String) {
            self.message = message
        }
    }

    static let createNames: Set = ["CreateFunction20150331", "CreateFunction"]
    static let tagNames: Set = ["TagResource20170331v2", "TagResource20170331", "TagResource", "UntagResource20170331v2", "UntagResource20170331", "UntagResource"]
    static let deleteNames: Set = ["DeleteFunction20150331", "DeleteFunction"]

    public init(json bytes: [UInt8]) throws(Error) {
        let event: JSONValue
        do {
            event = try JSONParser.parse(bytes)
        } catch {
            throw Error(message: "the event is not JSON: \(error)")
        }
        guard event.isObject else { throw Error(message: "the event is not a JSON object") }
        switch event["source"] {
        case .string("aws.events")?:
            self = .fullSync
        case .string("aws.lambda")?:
            let detail = event["detail"]
            if case .string(let code)? = detail?["errorCode"], !code.isEmpty {
                self = .ignored("the \(FunctionTags.printable(Self.text(detail?["eventName"]) ?? "reported")) call failed with \(FunctionTags.printable(code))")
                return
            }
            guard let name = Self.text(detail?["eventName"]) else { throw Error(message: "unsupported event kind: no detail.eventName") }
            let arn: String?
            if Self.createNames.contains(name) {
                arn = Self.text(detail?["responseElements"]?["functionArn"])
            } else if Self.tagNames.contains(name) {
                arn = Self.text(detail?["requestParameters"]?["resource"])
            } else if Self.deleteNames.contains(name) {
                arn = Self.text(detail?["requestParameters"]?["functionName"])
            } else {
                throw Error(message: "unsupported event kind \"\(FunctionTags.printable(name))\"")
            }
            guard let arn, !arn.isEmpty else { throw Error(message: "ARN undefined in the \(name) event") }
            guard !arn.utf8.contains(where: { $0 < 0x21 || $0 > 0x7e }) else {
                throw Error(message: "the function \"\(FunctionTags.printable(arn))\" in the \(name) event is not a name or ARN")
            }
            self = .function(arn, eventName: name)
        case .string(let other)?:
            throw Error(message: "unsupported event source \"\(FunctionTags.printable(other))\"")
        default:
            throw Error(message: "unsupported event source: the event has no source")
        }
    }

    static func text(_ value: JSONValue?) -> String? {
        if case .string(let text)? = value { return text }
        return nil
    }

    /// The identifier without a version or alias qualifier: `orders`, `…:function:orders`.
    public static func unqualified(_ identifier: String) -> String {
        let parts = identifier.split(separator: ":", omittingEmptySubsequences: false)
        if let index = parts.firstIndex(of: "function") {
            return parts.prefix(index + 2).joined(separator: ":")
        }
        return parts.count == 2 ? String(parts[0]) : identifier
    }

    /// The function a name, partial ARN (`123456789012:function:orders`) or ARN names, without a
    /// qualifier.
    public static func functionName(_ identifier: String) -> String {
        let parts = identifier.split(separator: ":", omittingEmptySubsequences: false)
        guard let index = parts.firstIndex(of: "function"), index + 1 < parts.count else { return identifier }
        return String(parts[index + 1])
    }
}

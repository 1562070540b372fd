import LambdaPayload

/// One EventBridge event the registrator is invoked with (consul-lambda.md A.1, A.6.3).
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
                self = .ignored("the \(Self.text(detail?["eventName"]) ?? "reported") call failed with \(code)")
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

    /// The function a name, partial ARN (`123456789012:function:orders`) or ARN names, without a
    /// qualifier.
    public static func functionName(_ identifier: String) -> String {
        let parts = identifier.split(separator: ":", omittingEmptySubsequences: false)
        guard let index = parts.firstIndex(of: "function"), index + 1 < parts.count else { return identifier }
        return String(parts[index + 1])
    }
}

import ConsulAPI

/// The Lambda settings of one Consul service, as the registrator writes them into the
/// `builtin/aws/lambda` extension of its service-defaults entry (docs/COMPATIBILITY.md, What it writes).
public struct LambdaArguments: Sendable, Hashable {
    public enum InvocationMode: String, Sendable, Hashable {
        case synchronous
        case asynchronous
    }

    public var arn: String
    public var payloadPassthrough: Bool
    public var invocationMode: InvocationMode
    /// The project's `lambda-gateway/payload-format` tag: `envoy` or `apigateway-v2`; nil writes none.
    public var payloadFormat: String?
    /// The project's `lambda-gateway/invoke-mode` tag: `RESPONSE_STREAM` streams answers
    /// (`InvokeWithResponseStream`); nil (or `BUFFERED`) writes none.
    public var invokeMode: String?

    public init(arn: String, payloadPassthrough: Bool = false, invocationMode: InvocationMode = .synchronous, payloadFormat: String? = nil, invokeMode: String? = nil) {
        self.invokeMode = invokeMode
        self.arn = arn
        self.payloadPassthrough = payloadPassthrough
        self.invocationMode = invocationMode
        self.payloadFormat = payloadFormat
    }

    public static let extensionName = "builtin/aws/lambda"

    /// The extension's `Arguments`, with the documented key casing and lower-case modes (docs/DECISIONS.md
    /// D48: the reference's upper-case `ASYNCHRONOUS` is read as synchronous by Consul's Envoy
    /// extension).
    public var json: FreeFormJSON {
        var arguments: [String: FreeFormJSON] = [
            "ARN": .string(arn),
            "PayloadPassthrough": .bool(payloadPassthrough),
            "InvocationMode": .string(invocationMode.rawValue),
        ]
        if let payloadFormat { arguments["PayloadFormat"] = .string(payloadFormat) }
        if let invokeMode { arguments["InvokeMode"] = .string(invokeMode) }
        return .object(arguments)
    }

    /// The settings an entry carries in its last `builtin/aws/lambda` extension (the one that counts,
    /// docs/COMPATIBILITY.md, Config entries), keys matched case-insensitively as Consul decodes them; nil when it has none
    /// (or only the legacy `Meta` form, which a sync rewrites into the extension).
    public init?(entry: ServiceDefaults) {
        guard let lambda = entry.EnvoyExtensions.last(where: { $0.Name == Self.extensionName }),
            let arguments = lambda.Arguments,
            let arn = arguments.value(forCaseInsensitiveKey: "ARN")?.stringValue
        else { return nil }
        self.arn = arn
        if case .bool(let flag)? = arguments.value(forCaseInsensitiveKey: "PayloadPassthrough") {
            payloadPassthrough = flag
        } else {
            payloadPassthrough = false
        }
        let mode = arguments.value(forCaseInsensitiveKey: "InvocationMode")?.stringValue?.lowercased()
        invocationMode = mode == "asynchronous" ? .asynchronous : .synchronous
        payloadFormat = arguments.value(forCaseInsensitiveKey: "PayloadFormat")?.stringValue
        let streamed = arguments.value(forCaseInsensitiveKey: "InvokeMode")?.stringValue?.uppercased()
        invokeMode = streamed == nil || streamed == "BUFFERED" ? nil : streamed
    }

    /// Whether an entry written by the reference registrator (`invocationMode: "ASYNCHRONOUS"`, read
    /// by Envoy as synchronous) must be rewritten even though it decodes to the same settings.
    static func hasCanonicalForm(_ entry: ServiceDefaults) -> Bool {
        guard entry.EnvoyExtensions.count(where: { $0.Name == extensionName }) == 1,
            let lambda = entry.EnvoyExtensions.first(where: { $0.Name == extensionName }),
            case .object(let members)? = lambda.Arguments
        else { return false }
        guard let mode = members["InvocationMode"]?.stringValue, mode == mode.lowercased() else { return false }
        return members["ARN"] != nil && members["PayloadPassthrough"] != nil
    }
}

import ConsulAPI
import LambdaInvoke
import LambdaPayload

/// A service's Lambda configuration (docs/COMPATIBILITY.md, Config entries), resolved from its config entries.
public struct LambdaSettings: Sendable, Hashable {
    public var function: FunctionARN
    public var payloadFormat: PayloadFormat
    public var passthrough: Bool
    public var invocationType: InvocationType
    /// `RESPONSE_STREAM`: calls are `InvokeWithResponseStream`, and answers are relayed as they arrive.
    public var invokeMode: InvokeMode = .buffered

    public var region: String { function.region }
}

/// Why a service's Lambda configuration is invalid; the service is left out, the others are served.
public struct LambdaConfigError: Error, Hashable, CustomStringConvertible {
    public var service: String
    public var reason: String
    public var description: String { "\(service): lambda config error: \(reason)" }
}

extension LambdaSettings {
    static let extensionName = "builtin/aws/lambda"
    static let metaPrefix = "serverless.consul.hashicorp.com/v1alpha1/lambda/"
    static let formatMetaKey = "lambda-gateway/payload-format"
    static let invokeModeMetaKey = "lambda-gateway/invoke-mode"

    /// Resolves S's settings: the last `builtin/aws/lambda` extension of proxy-defaults then
    /// service-defaults wins; otherwise the legacy `Meta` keys; otherwise S is not a Lambda (`nil`).
    public static func resolve(service: String, serviceDefaults: ServiceDefaults?, proxyDefaults: ProxyDefaults?) throws(LambdaConfigError) -> LambdaSettings? {
        func fail(_ reason: String) -> LambdaConfigError { LambdaConfigError(service: service, reason: reason) }
        let extensions = (proxyDefaults?.EnvoyExtensions ?? []) + (serviceDefaults?.EnvoyExtensions ?? [])
        if let required = extensions.first(where: { $0.Name != extensionName && $0.Required }) {
            throw fail("required Envoy extension \(required.Name) is not supported by this gateway")
        }
        let meta = serviceDefaults?.Meta ?? [:]
        if let lambda = extensions.last(where: { $0.Name == extensionName }) {
            let arguments = lambda.Arguments ?? .object([:])
            func argument(_ key: String) -> FreeFormJSON? {
                let value = arguments.value(forCaseInsensitiveKey: key)
                return value == .null ? nil : value
            }
            guard let arnText = argument("ARN")?.stringValue else { throw fail("the builtin/aws/lambda extension has no ARN") }
            let function = try parseARN(arnText, fail)
            if let region = argument("Region") {
                guard let text = region.stringValue, text == function.region else {
                    throw fail("Region \(quoted(region)) does not match ARN region \"\(function.region)\"")
                }
            }
            let passthrough = try boolean(argument("PayloadPassthrough"), name: "PayloadPassthrough", fail) ?? false
            let modeText = try argument("InvocationMode").map { value throws(LambdaConfigError) in try text(value, name: "InvocationMode", fail) }
            let mode = try invocationType(modeText, fail)
            var format = PayloadFormat.envoy
            let formatArgument = try argument("PayloadFormat").map { value throws(LambdaConfigError) in try text(value, name: "PayloadFormat", fail) }
            if let formatText = formatArgument ?? meta[formatMetaKey] {
                guard let parsed = PayloadFormat(configValue: formatText) else { throw fail("unknown PayloadFormat \"\(formatText)\"") }
                format = parsed
            }
            let invokeModeText = try argument("InvokeMode").map { value throws(LambdaConfigError) in try text(value, name: "InvokeMode", fail) }
            let invokeMode = try self.invokeMode(invokeModeText ?? meta[invokeModeMetaKey], asynchronous: mode == .event, fail)
            return LambdaSettings(function: function, payloadFormat: format, passthrough: passthrough, invocationType: mode, invokeMode: invokeMode)
        }

        guard let enabled = meta[metaPrefix + "enabled"], enabled.lowercased() == "true" else { return nil }
        guard let arnText = meta[metaPrefix + "arn"] else { throw fail("\(metaPrefix)arn is missing") }
        let function = try parseARN(arnText, fail)
        if let region = meta[metaPrefix + "region"], region != function.region {
            throw fail("Region \"\(region)\" does not match ARN region \"\(function.region)\"")
        }
        var passthrough = false
        for key in ["payload-passhthrough", "payload-passthroughgh", "payload-passthrough"] {
            if let value = meta[metaPrefix + key] {
                passthrough = try boolean(.string(value), name: metaPrefix + key, fail) ?? false
                break
            }
        }
        let mode = try invocationType(meta[metaPrefix + "invocation-mode"], fail)
        var format = PayloadFormat.envoy
        if let formatText = meta[formatMetaKey] {
            guard let parsed = PayloadFormat(configValue: formatText) else { throw fail("unknown payload format \"\(formatText)\"") }
            format = parsed
        }
        let invokeMode = try self.invokeMode(meta[invokeModeMetaKey], asynchronous: mode == .event, fail)
        return LambdaSettings(function: function, payloadFormat: format, passthrough: passthrough, invocationType: mode, invokeMode: invokeMode)
    }

    /// `BUFFERED` (the default) or `RESPONSE_STREAM`, in any case; an asynchronous invocation has
    /// no answer to stream.
    static func invokeMode(_ text: String?, asynchronous: Bool, _ fail: (String) -> LambdaConfigError) throws(LambdaConfigError) -> InvokeMode {
        guard let text else { return .buffered }
        guard let mode = InvokeMode(configValue: text) else { throw fail("unknown InvokeMode \"\(text)\" (BUFFERED or RESPONSE_STREAM)") }
        if mode == .responseStream && asynchronous { throw fail("InvokeMode RESPONSE_STREAM cannot be used with an asynchronous InvocationMode") }
        return mode
    }

    private static func parseARN(_ text: String, _ fail: (String) -> LambdaConfigError) throws(LambdaConfigError) -> FunctionARN {
        do {
            return try FunctionARN(parsing: text)
        } catch {
            throw fail(error.description)
        }
    }

    /// Booleans or the strings `true`/`false` in any case (docs/DECISIONS.md D34).
    private static func boolean(_ value: FreeFormJSON?, name: String, _ fail: (String) -> LambdaConfigError) throws(LambdaConfigError) -> Bool? {
        switch value {
        case nil: return nil
        case .bool(let flag)?: return flag
        case .string(let text)? where text.lowercased() == "true": return true
        case .string(let text)? where text.lowercased() == "false": return false
        case let other?: throw fail("\(name) must be true or false, not \(quoted(other))")
        }
    }

    private static func text(_ value: FreeFormJSON, name: String, _ fail: (String) -> LambdaConfigError) throws(LambdaConfigError) -> String {
        guard let text = value.stringValue else { throw fail("\(name) must be a string, not \(quoted(value))") }
        return text
    }

    /// `synchronous`/`asynchronous`, compared case-insensitively (fixes Consul's `ASYNCHRONOUS` bug).
    private static func invocationType(_ text: String?, _ fail: (String) -> LambdaConfigError) throws(LambdaConfigError) -> InvocationType {
        guard let text else { return .requestResponse }
        switch text.lowercased() {
        case "synchronous": return .requestResponse
        case "asynchronous": return .event
        default: throw fail("unknown InvocationMode \"\(text)\"")
        }
    }

    private static func quoted(_ value: FreeFormJSON) -> String {
        switch value {
        case .string(let text): "\"\(text)\""
        case .bool(let flag): String(flag)
        case .number(let number): String(number)
        case .null: "null"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

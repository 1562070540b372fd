import ConsulAPI

/// What the registrator does with one Lambda function, decided from its tags (docs/COMPATIBILITY.md, Tags).
public enum FunctionIntent: Sendable, Hashable {
    /// Tagged enabled: these services should exist with these settings.
    case enabled([DesiredService])
    /// Not tagged enabled: its services go.
    case disabled
    /// Another datacenter's or an unmanaged partition's function: not this registrator's business.
    case ignored(String)
    /// Tags this registrator cannot apply (partition or namespace tags on Community Edition): a
    /// warning, and the function's services are left as they are.
    case skipped(String)
    /// A bad tag value: an error for this function only, whose services are neither written nor deleted.
    case invalid(String)
    /// Its tags could not be read: nothing about it may be concluded, least of all a deletion.
    case unknown(String)
}

/// One Consul service a function should have: the function itself, or one of its aliases.
public struct DesiredService: Sendable, Hashable {
    public var name: String
    public var scope: ConsulScope
    /// The function the service belongs to (an alias service's too).
    public var function: String
    public var arguments: LambdaArguments

    public init(name: String, scope: ConsulScope = .default, function: String, arguments: LambdaArguments) {
        self.name = name
        self.scope = scope
        self.function = function
        self.arguments = arguments
    }
}

/// The registrator's tags (docs/COMPATIBILITY.md, Tags) and how they are read.
public enum FunctionTags {
    public static let prefix = "serverless.consul.hashicorp.com/v1alpha1/lambda"
    public static let enabled = prefix + "/enabled"
    public static let payloadPassthrough = prefix + "/payload-passthrough"
    public static let invocationMode = prefix + "/invocation-mode"
    public static let datacenter = prefix + "/datacenter"
    public static let partition = prefix + "/partition"
    public static let namespace = prefix + "/namespace"
    public static let aliases = prefix + "/aliases"
    /// The project's own tag (docs/DECISIONS.md D59).
    public static let payloadFormat = "lambda-gateway/payload-format"
    /// The project's own: `BUFFERED` (the default) or `RESPONSE_STREAM`.
    public static let invokeMode = "lambda-gateway/invoke-mode"

    /// What the tags are read against.
    public struct Context: Sendable, Hashable {
        /// The registrator's datacenter (docs/DECISIONS.md D49: `DATACENTER`, or the agent's).
        public var datacenter: String
        public var enterprise: Bool
        /// `PARTITIONS`: the admin partitions this registrator manages (Enterprise).
        public var partitions: Set<String>

        public init(datacenter: String, enterprise: Bool = false, partitions: Set<String> = []) {
            self.datacenter = datacenter
            self.enterprise = enterprise
            self.partitions = partitions
        }
    }

    /// The alias names the `aliases` tag asks for (`dev+staging+prod`), so that the caller knows
    /// whether to ask Lambda which exist. Empty when the function is not enabled.
    public static func requestedAliases(_ tags: [String: String]) -> [String] {
        guard tags[enabled] == "true", let text = tags[aliases], !text.isEmpty else { return [] }
        return text.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
    }

    /// The tag rules for one function (docs/COMPATIBILITY.md, Tags). `existingAliases`: the function's aliases as `ListAliases`
    /// gave them (nil: not checked); a requested alias that does not exist is left out with a
    /// warning. Conflicts with other functions' names are the planner's (it sees every function).
    public static func intent(
        function: String,
        arn: String,
        tags: [String: String],
        existingAliases: Set<String>?,
        context: Context
    ) -> (intent: FunctionIntent, warnings: [String]) {
        // Another datacenter's function is not ours, whatever else it says.
        if let datacenter = tags[datacenter], !datacenter.isEmpty, datacenter != context.datacenter {
            return (.ignored("tagged for datacenter \"\(datacenter)\", this registrator serves \"\(context.datacenter)\""), [])
        }
        let partition = tags[partition].flatMap { $0.isEmpty ? nil : $0 }
        let namespace = tags[namespace].flatMap { $0.isEmpty ? nil : $0 }
        // Partition and namespace tags need Consul Enterprise.
        if !context.enterprise, partition != nil || namespace != nil {
            return (.skipped("partition and namespace tags need Consul Enterprise (ENTERPRISE=true)"), [])
        }
        let scope = ConsulScope(partition: partition ?? "", namespace: namespace ?? "")
        // A partition this registrator does not manage is not ours.
        if context.enterprise, !context.partitions.contains(scope.partition) {
            return (.ignored("partition \"\(scope.partition)\" is not in PARTITIONS"), [])
        }
        // Only `enabled=true` asks for services.
        guard tags[enabled] == "true" else { return (.disabled, []) }

        // Every value is checked before anything is decided for the function.
        let mode: LambdaArguments.InvocationMode
        // ASCII case folding: Unicode's would take `aſynchronous` (long s) for ASYNCHRONOUS.
        switch tags[invocationMode].map({ String(decoding: $0.utf8.map { (0x61...0x7a).contains($0) ? $0 - 0x20 : $0 }, as: UTF8.self) }) {
        case nil, "SYNCHRONOUS": mode = .synchronous
        case "ASYNCHRONOUS": mode = .asynchronous
        case _?:
            return (.invalid("invalid \(invocationMode) \"\(Self.printable(tags[invocationMode] ?? ""))\": expected SYNCHRONOUS or ASYNCHRONOUS"), [])
        }
        let format = tags[payloadFormat]
        if let format, format != "envoy", format != "apigateway-v2" {
            return (.invalid("invalid \(payloadFormat) \"\(Self.printable(format))\": expected envoy or apigateway-v2"), [])
        }
        var streamed: String?
        switch tags[invokeMode].map({ String(decoding: $0.utf8.map { (0x61...0x7a).contains($0) ? $0 - 0x20 : $0 }, as: UTF8.self) }) {
        case nil, "BUFFERED": streamed = nil
        case "RESPONSE_STREAM" where mode == .synchronous: streamed = "RESPONSE_STREAM"
        case "RESPONSE_STREAM":
            return (.invalid("\(invokeMode) RESPONSE_STREAM cannot be used with \(invocationMode) ASYNCHRONOUS"), [])
        case _?:
            return (.invalid("invalid \(invokeMode) \"\(Self.printable(tags[invokeMode] ?? ""))\": expected BUFFERED or RESPONSE_STREAM"), [])
        }
        let requested = requestedAliases(tags)
        if let bad = requested.first(where: { !isAliasName($0) }) {
            return (.invalid("invalid alias \"\(Self.printable(bad))\" in \(aliases) \"\(Self.printable(tags[aliases] ?? ""))\": aliases are '+'-separated names of letters, digits, '-' and '_'"), [])
        }

        let passthrough = tags[payloadPassthrough] == "true"
        func service(_ name: String, _ arn: String) -> DesiredService {
            DesiredService(
                name: name, scope: scope, function: function, arguments: LambdaArguments(arn: arn, payloadPassthrough: passthrough, invocationMode: mode, payloadFormat: format, invokeMode: streamed))
        }
        var services = [service(function, arn)]
        var warnings: [String] = []
        for alias in requested {
            // docs/DECISIONS.md D51: an alias Lambda does not know would fail every call.
            if let existingAliases, !existingAliases.contains(alias) {
                warnings.append("alias \"\(alias)\" of \(function) does not exist in Lambda; its service is not registered")
                continue
            }
            services.append(service("\(function)-\(alias)", "\(arn):\(alias)"))
        }
        return (.enabled(services), warnings)
    }

    /// Lambda's alias names: 1–128 of `[a-zA-Z0-9-_]`, not only digits (that would be a version).
    static func isAliasName(_ text: String) -> Bool {
        (1...128).contains(text.utf8.count) && isNameText(text) && !text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// Only the bytes Lambda allows in function and alias names: `[a-zA-Z0-9-_]`.
    static func isNameText(_ text: String) -> Bool {
        text.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
    }

    /// A tag value as it may appear in a log line or report: printable ASCII, at most 64 bytes.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(64) {
            out += (0x20...0x7e).contains(scalar.value) && scalar != "\\" && scalar != "\"" ? String(scalar) : scalar.escaped(asASCII: true)
        }
        return text.unicodeScalars.count > 64 ? out + "…" : out
    }
}

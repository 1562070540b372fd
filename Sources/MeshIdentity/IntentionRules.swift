/// What an intention does for a caller it matches, and what the default policy does for a caller
/// none matches.
public enum IntentionAction: String, Sendable, Hashable, CaseIterable {
    case allow
    case deny

    /// Consul's spelling in any case (`allow`, `DENY`); nil for anything else, an L7 intention's
    /// empty `Action` included.
    public init?(consul text: String) {
        self.init(rawValue: text.lowercased())
    }
}

/// One intention whose destination is the service, in the shape the evaluator needs (Consul's service-intentions documentation).
public struct IntentionRule: Sendable, Hashable {
    public var sourcePartition: String
    public var sourceNamespace: String
    public var sourceName: String
    public var sourcePeer: String
    public var sourceSamenessGroup: String
    public var sourceType: String
    /// Nil for an L7 intention (its `permissions` decide).
    public var action: IntentionAction?
    public var permissions: [IntentionPermissionRule]
    public var requiresJWT: Bool
    public var precedence: Int

    public init(
        sourceName: String,
        sourceNamespace: String = "",
        sourcePartition: String = "",
        sourcePeer: String = "",
        sourceSamenessGroup: String = "",
        sourceType: String = "consul",
        action: IntentionAction?,
        permissions: [IntentionPermissionRule] = [],
        requiresJWT: Bool = false,
        precedence: Int
    ) {
        self.sourcePartition = sourcePartition
        self.sourceNamespace = sourceNamespace
        self.sourceName = sourceName
        self.sourcePeer = sourcePeer
        self.sourceSamenessGroup = sourceSamenessGroup
        self.sourceType = sourceType
        self.action = action
        self.permissions = permissions
        self.requiresJWT = requiresJWT
        self.precedence = precedence
    }
}

public struct IntentionPermissionRule: Sendable, Hashable {
    public var action: IntentionAction
    public var http: HTTPRule?
    public var requiresJWT: Bool

    public init(action: IntentionAction, http: HTTPRule? = nil, requiresJWT: Bool = false) {
        self.action = action
        self.http = http
        self.requiresJWT = requiresJWT
    }
}

public struct HTTPRule: Sendable, Hashable {
    public var pathExact: String
    public var pathPrefix: String
    public var pathRegex: String
    public var methods: [String]
    public var headers: [HeaderRule]

    public init(pathExact: String = "", pathPrefix: String = "", pathRegex: String = "", methods: [String] = [], headers: [HeaderRule] = []) {
        self.pathExact = pathExact
        self.pathPrefix = pathPrefix
        self.pathRegex = pathRegex
        self.methods = methods
        self.headers = headers
    }
}

public struct HeaderRule: Sendable, Hashable {
    public var name: String
    public var present: Bool
    public var exact: String
    public var prefix: String
    public var suffix: String
    public var contains: String
    public var regex: String
    public var ignoreCase: Bool
    public var invert: Bool

    public init(
        name: String, present: Bool = false, exact: String = "", prefix: String = "", suffix: String = "", contains: String = "", regex: String = "", ignoreCase: Bool = false, invert: Bool = false
    ) {
        self.name = name
        self.present = present
        self.exact = exact
        self.prefix = prefix
        self.suffix = suffix
        self.contains = contains
        self.regex = regex
        self.ignoreCase = ignoreCase
        self.invert = invert
    }
}

/// What a request shows the evaluator.
public struct AuthorizationRequest: Sendable {
    public var method: String
    /// The normalized path, without the query.
    public var path: String
    public var headers: [(name: String, value: String)]

    public init(method: String, path: String, headers: [(name: String, value: String)] = []) {
        self.method = method
        self.path = path
        self.headers = headers
    }

    /// All values of `name` (case-insensitive) joined with `,`; `nil` when absent.
    func headerValue(_ name: String) -> String? {
        let lower = name.asciiLowercased
        let values = headers.filter { $0.name.asciiLowercased.bytesEqual(lower) }.map(\.value)
        return values.isEmpty ? nil : values.joined(separator: ",")
    }
}

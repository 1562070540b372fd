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

/// The HTTP part of an L7 permission: every part that is given must match.
public struct HTTPRule: Sendable, Hashable {
    /// Nil: any path.
    public var path: PathMatch?
    /// Empty: any method. Compared byte for byte (`get` is not `GET`).
    public var methods: [String]
    /// Each must match.
    public var headers: [HeaderRule]

    public init(path: PathMatch? = nil, methods: [String] = [], headers: [HeaderRule] = []) {
        self.path = path
        self.methods = methods
        self.headers = headers
    }
}

/// How a permission matches the normalized path: Consul's `PathExact`, `PathPrefix` or
/// `PathRegex`, of which a permission has at most one.
public enum PathMatch: Sendable, Hashable {
    case exact(String)
    /// A plain byte prefix (`/ord` matches `/orders`).
    case prefix(String)
    /// Matched against the whole path (RE2-style).
    case regex(String)
}

/// One entry of a permission's `Header` list.
public struct HeaderRule: Sendable, Hashable {
    /// Compared case-insensitively (ASCII).
    public var name: String
    public var match: HeaderMatch
    /// Folds ASCII case for the value matchers that compare text (`exact`, `prefix`, `suffix`,
    /// `contains`).
    public var ignoreCase: Bool
    /// Negates the match. A value matcher still never matches a missing header (Envoy's behaviour).
    public var invert: Bool

    public init(name: String, match: HeaderMatch, ignoreCase: Bool = false, invert: Bool = false) {
        self.name = name
        self.match = match
        self.ignoreCase = ignoreCase
        self.invert = invert
    }
}

/// How a header rule matches the header's values (all of them joined with `,`): Consul's
/// `Present`, `Exact`, `Prefix`, `Suffix`, `Contains` or `Regex`, of which an entry has exactly
/// one. An entry with none constrains nothing and is not represented: the edges drop it, as Consul's
/// Envoy configuration skips it.
public enum HeaderMatch: Sendable, Hashable {
    case present
    case exact(String)
    case prefix(String)
    case suffix(String)
    case contains(String)
    /// Matched against the whole value (RE2-style).
    case regex(String)
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

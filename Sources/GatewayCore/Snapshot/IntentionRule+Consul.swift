import ConsulAPI
import MeshIdentity

/// An intention Consul should never have sent: one that Consul's own validation refuses to store
/// (a permission with more than one of `PathExact`, `PathPrefix` and `PathRegex`, a `Header` entry
/// with more than one matcher or no `Name`). It is not dropped, since dropping a deny permission
/// would widen access: the service's intentions are refused and every request to it is denied,
/// like a regex that does not compile (docs/DECISIONS.md D28).
public struct InvalidIntention: Error, Sendable, Hashable, CustomStringConvertible {
    /// The source, `partition/namespace/name` outside the default scope.
    public var source: String
    /// The destination as Consul names it (`*` for an entry that covers every service of its namespace).
    public var destination: String
    /// The field in Consul's JSON, like `Permissions[0].HTTP.Header[1]`.
    public var field: String
    public var problem: String

    public var description: String { "the intention from \(source) to \(destination) is invalid: \(field) \(problem)" }
}

extension IntentionRule {
    /// The evaluator's view of an intention from `/v1/connect/intentions/match`; `service` is the
    /// destination it was asked for.
    public init(_ intention: Intention, service: String) throws(InvalidIntention) {
        let permissions: [IntentionPermissionRule]
        do {
            permissions = try IntentionPermissionRule.rules(intention.Permissions)
        } catch {
            let source = ConsulScope(partition: intention.SourcePartition, namespace: intention.SourceNS).qualified(intention.SourceName)
            throw InvalidIntention(source: source, destination: service, field: error.field, problem: error.problem)
        }
        self.init(
            sourceName: intention.SourceName,
            sourceNamespace: intention.SourceNS,
            sourcePartition: intention.SourcePartition,
            sourcePeer: intention.SourcePeer,
            sourceSamenessGroup: intention.SourceSamenessGroup,
            sourceType: intention.SourceType,
            // "" for an L7 intention; a value Consul never sends is no action, which fails closed.
            action: IntentionAction(consul: intention.Action),
            permissions: permissions,
            requiresJWT: intention.JWT.map { $0 != .null } ?? false,
            precedence: intention.Precedence
        )
    }
}

/// What is wrong with one field of an intention's permissions, before the intention is named.
struct InvalidPermissionField: Error {
    var field: String
    var problem: String
}

extension IntentionPermissionRule {
    /// An intention's L7 permissions, from a match answer or a `service-intentions` entry alike.
    static func rules(_ permissions: [IntentionPermission]) throws(InvalidPermissionField) -> [IntentionPermissionRule] {
        var rules: [IntentionPermissionRule] = []
        for (index, permission) in permissions.enumerated() {
            rules.append(try IntentionPermissionRule(permission, field: "Permissions[\(index)]"))
        }
        return rules
    }

    /// One permission; `field` names it in Consul's JSON.
    init(_ permission: IntentionPermission, field: String) throws(InvalidPermissionField) {
        self.init(
            // A value Consul never sends denies (fails closed).
            action: IntentionAction(consul: permission.Action) ?? .deny,
            http: try permission.HTTP.map { http throws(InvalidPermissionField) in try HTTPRule(http, field: "\(field).HTTP") },
            requiresJWT: permission.JWT.map { $0 != .null } ?? false
        )
    }
}

extension HTTPRule {
    /// `""` is Go's zero value: a field Consul sends empty is not set.
    init(_ http: IntentionHTTPPermission, field: String) throws(InvalidPermissionField) {
        let paths: [(name: String, match: PathMatch?)] = [
            ("PathExact", http.PathExact.isEmpty ? nil : .exact(http.PathExact)),
            ("PathPrefix", http.PathPrefix.isEmpty ? nil : .prefix(http.PathPrefix)),
            ("PathRegex", http.PathRegex.isEmpty ? nil : .regex(http.PathRegex)),
        ].filter { $0.match != nil }
        guard paths.count <= 1 else {
            throw InvalidPermissionField(field: field, problem: "sets \(Self.list(paths.map(\.name))); Consul allows at most one of PathExact, PathPrefix and PathRegex")
        }
        var headers: [HeaderRule] = []
        for (index, header) in http.Header.enumerated() {
            // An entry with no matcher constrains nothing: dropped, as Consul's Envoy configuration skips it.
            if let rule = try HeaderRule(header, field: "\(field).Header[\(index)]") { headers.append(rule) }
        }
        self.init(path: paths.first?.match, methods: http.Methods, headers: headers)
    }

    /// `A and B`, `A, B and C`.
    static func list(_ names: [String]) -> String {
        names.count <= 1 ? names.joined() : names.dropLast().joined(separator: ", ") + " and " + names[names.count - 1]
    }
}

extension HeaderRule {
    /// Nil for an entry with no matcher.
    init?(_ header: IntentionHeaderPermission, field: String) throws(InvalidPermissionField) {
        guard !header.Name.isEmpty else { throw InvalidPermissionField(field: field, problem: "has no Name; Consul requires one") }
        let matches: [(name: String, match: HeaderMatch?)] = [
            ("Present", header.Present ? .present : nil),
            ("Exact", header.Exact.isEmpty ? nil : .exact(header.Exact)),
            ("Prefix", header.Prefix.isEmpty ? nil : .prefix(header.Prefix)),
            ("Suffix", header.Suffix.isEmpty ? nil : .suffix(header.Suffix)),
            ("Contains", header.Contains.isEmpty ? nil : .contains(header.Contains)),
            ("Regex", header.Regex.isEmpty ? nil : .regex(header.Regex)),
        ].filter { $0.match != nil }
        guard matches.count <= 1 else {
            throw InvalidPermissionField(
                field: field, problem: "(\(header.Name.debugDescription)) sets \(HTTPRule.list(matches.map(\.name))); Consul allows one of Present, Exact, Prefix, Suffix, Contains and Regex")
        }
        guard let match = matches.first?.match else { return nil }
        self.init(name: header.Name, match: match, ignoreCase: header.IgnoreCase, invert: header.Invert)
    }
}

extension ServedService {
    /// The compiled intentions of this service under `defaultPolicy`; every request is denied when
    /// Consul sent an invalid one.
    public func authorization(defaultPolicy: IntentionAction) -> IntentionEvaluator {
        IntentionEvaluator(rules: intentions, defaultPolicy: defaultPolicy, invalid: invalidIntention?.description)
    }
}

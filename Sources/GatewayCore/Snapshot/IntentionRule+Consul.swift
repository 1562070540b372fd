import ConsulAPI
import MeshIdentity

extension IntentionRule {
    /// The evaluator's view of an intention from `/v1/connect/intentions/match`.
    public init(_ intention: Intention) {
        self.init(
            sourceName: intention.SourceName,
            sourceNamespace: intention.SourceNS,
            sourcePartition: intention.SourcePartition,
            sourcePeer: intention.SourcePeer,
            sourceSamenessGroup: intention.SourceSamenessGroup,
            sourceType: intention.SourceType,
            // "" for an L7 intention; a value Consul never sends is no action, which fails closed.
            action: IntentionAction(consul: intention.Action),
            permissions: intention.Permissions.map(IntentionPermissionRule.init),
            requiresJWT: intention.JWT.map { $0 != .null } ?? false,
            precedence: intention.Precedence
        )
    }
}

extension IntentionPermissionRule {
    /// One L7 permission, from a match answer or a `service-intentions` entry alike.
    public init(_ permission: IntentionPermission) {
        self.init(
            // A value Consul never sends denies (fails closed).
            action: IntentionAction(consul: permission.Action) ?? .deny,
            http: permission.HTTP.map { http in
                HTTPRule(
                    pathExact: http.PathExact,
                    pathPrefix: http.PathPrefix,
                    pathRegex: http.PathRegex,
                    methods: http.Methods,
                    headers: http.Header.map {
                        HeaderRule(
                            name: $0.Name, present: $0.Present, exact: $0.Exact, prefix: $0.Prefix, suffix: $0.Suffix, contains: $0.Contains, regex: $0.Regex, ignoreCase: $0.IgnoreCase,
                            invert: $0.Invert)
                    }
                )
            },
            requiresJWT: permission.JWT.map { $0 != .null } ?? false
        )
    }
}

extension ServedService {
    /// The compiled intentions of this service under `defaultPolicy`.
    public func authorization(defaultPolicy: IntentionAction) -> IntentionEvaluator {
        IntentionEvaluator(rules: intentions, defaultPolicy: defaultPolicy)
    }
}

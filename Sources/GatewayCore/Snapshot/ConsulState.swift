import ConsulAPI
import Foundation
import MeshIdentity

/// What the watches have delivered so far. A missing value means "not fetched yet"; an absent config
/// entry is `.absent`, which counts as fetched (Consul answered that there is none). Errors never clear a value.
///
/// Per-service values are keyed by `LinkedService.key`; the list watches are per scope, one per
/// (partition, namespace) in use (docs/DECISIONS.md D35), so a CE gateway has exactly one of each.
public struct ConsulState: Sendable {
    public var roots: CARoots?
    public var mesh: ConfigEntryAnswer<MeshConfig>?
    public var proxyDefaults: ConfigEntryAnswer<ProxyDefaults>?
    public var gatewayServices: [GatewayService]?
    public var catalogServices: [ConsulScope: CatalogServices] = [:]
    public var serviceDefaults: [ConsulScope: [ServiceDefaults]] = [:]
    public var serviceResolvers: [ConsulScope: [ServiceResolver]] = [:]
    /// The latest complete `service-intentions` list of each scope: the intentions of its services
    /// are derived from it (`IntentionsFromEntries`).
    public var intentionEntries: [ConsulScope: [ServiceIntentionsEntry]] = [:]
    /// Scopes whose latest list answer was not complete (ACLs hid entries): their services'
    /// intentions come from the match query below.
    public var intentionsFromMatch: Set<ConsulScope> = []
    /// Intentions with the service as destination, once an intentions match answer covered it
    /// (only while its scope is in `intentionsFromMatch`).
    public var intentions: [String: [Intention]] = [:]
    /// Services whose intentions the agent refused to the gateway's token (403), with its answer.
    public var intentionRefusals: [String: String] = [:]
    public var leaves: [String: LeafCertificate] = [:]
    /// The default intention policy's sources (docs/DECISIONS.md D38): the configured override, the
    /// agent's `DebugConfig.DefaultIntentionPolicy`, the latest `X-Consul-Default-ACL-Policy`.
    public var defaultPolicyOverride: IntentionAction?
    public var agentDefaultPolicy: IntentionAction?
    public var headerDefaultPolicy: IntentionAction?
    public var datacenterOverride: String?

    public init() {}

    /// The first source that is known, else `deny` (services are not served before then anyway).
    public var defaultIntentionPolicy: IntentionAction {
        defaultPolicyOverride ?? agentDefaultPolicy ?? headerDefaultPolicy ?? .deny
    }

    /// Linked Lambda candidates: terminating-gateway entries that are services, not destinations
    /// (docs/COMPATIBILITY.md, Other entries: `terminating-gateway`), once each.
    public var linkedServices: [LinkedService] {
        var seen = Set<String>()
        return (gatewayServices ?? []).filter { $0.GatewayKind == "terminating-gateway" && $0.ServiceKind != "destination" }
            .map { LinkedService(name: $0.Service.Name, scope: $0.scope) }
            .filter { seen.insert($0.key).inserted }
    }
}

/// A service linked to the gateway: its Consul name in its partition and namespace.
public struct LinkedService: Sendable, Hashable, Comparable {
    public var name: String
    public var scope: ConsulScope

    public init(name: String, scope: ConsulScope = .default) {
        self.name = name
        self.scope = scope
    }

    /// Its name in the snapshot, logs and metrics: the plain name in the default scope.
    public var key: String { scope.qualified(name) }

    public static func < (lhs: LinkedService, rhs: LinkedService) -> Bool {
        (lhs.scope, lhs.name) < (rhs.scope, rhs.name)
    }
}

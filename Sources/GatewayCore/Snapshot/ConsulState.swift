import ConsulAPI
import Foundation

/// What the watches have delivered so far. `nil` means "not fetched yet"; an absent config entry is
/// `.absent`, which counts as fetched (consul-api.md §4.2). Errors never clear a value.
public struct ConsulState: Sendable {
    public var roots: CARoots?
    public var mesh: ConfigEntryAnswer<MeshConfig>?
    public var proxyDefaults: ConfigEntryAnswer<ProxyDefaults>?
    public var gatewayServices: [GatewayService]?
    public var catalogServices: CatalogServices?
    public var serviceDefaults: [ServiceDefaults]?
    public var serviceResolvers: [ServiceResolver]?
    /// The answers of the intentions match watch, and the names they cover.
    public var intentions: IntentionMatches?
    public var intentionNames: Set<String> = []
    /// Services whose intentions the agent refused to the gateway's token (403), with its answer.
    public var intentionRefusals: [String: String] = [:]
    public var leaves: [String: LeafCertificate] = [:]
    /// The default intention policy's sources (consul-api.md §4.5): the configured override, the
    /// agent's `DebugConfig.DefaultIntentionPolicy`, the latest `X-Consul-Default-ACL-Policy`.
    public var defaultPolicyOverride: String?
    public var agentDefaultPolicy: String?
    public var headerDefaultPolicy: String?
    public var datacenterOverride: String?

    public init() {}

    /// The first source that is known, else `deny` (services are not served before then anyway).
    public var defaultIntentionPolicy: String {
        defaultPolicyOverride ?? agentDefaultPolicy ?? headerDefaultPolicy ?? "deny"
    }

    /// Linked Lambda candidates: terminating-gateway entries that are services, not destinations.
    public var linkedServices: [String] {
        (gatewayServices ?? []).filter { $0.GatewayKind == "terminating-gateway" && $0.ServiceKind != "destination" }.map(\.Service.Name)
    }
}

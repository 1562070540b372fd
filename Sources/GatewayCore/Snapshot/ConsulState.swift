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
    /// The answer of the intentions match watch, and the names it was asked for.
    public var intentions: IntentionMatches?
    public var intentionNames: Set<String> = []
    public var leaves: [String: LeafCertificate] = [:]
    /// Latest `X-Consul-Default-ACL-Policy`, or a configured override.
    public var defaultACLPolicy: String?
    public var datacenterOverride: String?

    public init() {}

    /// Linked Lambda candidates: terminating-gateway entries that are services, not destinations.
    public var linkedServices: [String] {
        (gatewayServices ?? []).filter { $0.GatewayKind == "terminating-gateway" && $0.ServiceKind != "destination" }.map(\.Service.Name)
    }
}

/// One entry of `GET /v1/catalog/gateway-services/<gateway>` (Consul's Catalog API documentation).
public struct GatewayService: Decodable, Sendable, Hashable {
    public struct Name: Decodable, Sendable, Hashable {
        @Zero public var Name: String
        @Zero public var Namespace: String
        @Zero public var Partition: String
    }

    public var Gateway: Name
    public var Service: Name
    @Zero public var GatewayKind: String
    /// `service` or `destination` (destinations are not Lambda services).
    @Zero public var ServiceKind: String
    @Zero public var FromWildcard: Bool
    @Zero public var CreateIndex: UInt64
    @Zero public var ModifyIndex: UInt64
}

extension GatewayService {
    /// The linked service's partition and namespace (both empty on CE: the default scope).
    public var scope: ConsulScope { ConsulScope(partition: Service.Partition, namespace: Service.Namespace) }
}

/// `GET /v1/catalog/services`: service name → tags; a key is present while the service has an instance.
public typealias CatalogServices = [String: [String]]

/// One entry of `GET /v1/health/service/<svc>` (Consul's Health API documentation).
public struct HealthServiceEntry: Decodable, Sendable, Hashable {
    public struct Node: Decodable, Sendable, Hashable {
        @Zero public var Node: String
        @Zero public var Address: String
        @Zero public var Datacenter: String
        @Zero public var Meta: [String: String]
    }

    public struct Service: Decodable, Sendable, Hashable {
        @Zero public var ID: String
        @Zero public var Service: String
        @Zero public var Tags: [String]
        @Zero public var Address: String
        @Zero public var Meta: [String: String]
        @Zero public var Port: Int
    }

    public var Node: Node
    public var Service: Service
}

/// `GET /v1/agent/self`: only what the gateway reads (Consul's Agent API documentation).
public struct AgentSelf: Decodable, Sendable, Hashable {
    public struct Config: Decodable, Sendable, Hashable {
        @Zero public var Datacenter: String
        @Zero public var NodeName: String
        @Zero public var Version: String
    }

    public struct DebugConfig: Decodable, Sendable, Hashable {
        @Zero public var DefaultIntentionPolicy: String
    }

    public var Config: Config?
    public var DebugConfig: DebugConfig?
}

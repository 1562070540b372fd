import Foundation

/// The gateway's own registration in its local agent (docs/DECISIONS.md D41), as
/// `consul connect envoy -gateway=terminating -register` makes it: `Kind: terminating-gateway`,
/// its address and port, and a TCP check on the listener.
public struct GatewayRegistration: Sendable, Hashable {
    public var id: String
    public var name: String
    public var address: String
    public var port: Int
    public var version: String
    public var checkInterval = "10s"
    public var deregisterCriticalAfter = "6h"

    public init(id: String, name: String, address: String, port: Int, version: String) {
        self.id = id
        self.name = name
        self.address = address
        self.port = port
        self.version = version
    }

    /// `host:port`, with brackets around an IPv6 address.
    public var hostPort: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }

    var body: FreeFormJSON {
        .object([
            "Kind": .string("terminating-gateway"),
            "ID": .string(id),
            "Name": .string(name),
            "Address": .string(address),
            "Port": .number(Double(port)),
            "TaggedAddresses": .object(["lan": .object(["Address": .string(address), "Port": .number(Double(port))])]),
            "Meta": .object(["lambda-gateway-version": .string(version)]),
            "Check": .object([
                "Name": .string("terminating-gateway listening"),
                "TCP": .string(hostPort),
                "Interval": .string(checkInterval),
                "DeregisterCriticalServiceAfter": .string(deregisterCriticalAfter),
            ]),
        ])
    }
}

extension ConsulClient {
    public func register(_ registration: GatewayRegistration) async throws(ConsulError) {
        try await putJSON("/v1/agent/service/register", registration.body)
    }

    public func deregister(_ registration: GatewayRegistration) async throws(ConsulError) {
        _ = try await send(.PUT, "/v1/agent/service/deregister/\(registration.id)")
    }

    /// Whether the local agent still has the service (`GET /v1/agent/service/<id>`: 404 when not).
    public func agentHasService(id: String) async throws(ConsulError) -> Bool {
        try await send(.GET, "/v1/agent/service/\(id)", allowNotFound: true).status != 404
    }
}

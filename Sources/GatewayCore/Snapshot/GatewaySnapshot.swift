import ConsulAPI
import Foundation
import LambdaInvoke
import MeshIdentity

/// Everything the data plane serves, immutable: built from Consul's answers, replaced atomically.
public struct GatewaySnapshot: Sendable {
    /// Increases with every published snapshot.
    public var version: UInt64
    public var createdAt: Date
    public var trustDomain: String
    public var datacenter: String
    /// PEM of every CA root: all are trust anchors during a rotation.
    public var rootPEMs: [String]
    public var activeRootID: String
    /// `allow` or `deny`.
    public var defaultIntentionPolicy: String
    /// Served services by name.
    public var services: [String: ServedService]
    /// Lower-cased SNI → service name (mesh-identity.md §2.2).
    public var sniTable: [String: String]
    /// Linked services that are not served, with the reason (logged and shown on `/config`).
    public var notServed: [String: String]
    /// `mesh` config: strip a client's x-forwarded-client-cert.
    public var sanitizeXFCC: Bool
    /// `mesh` config: the TLS versions and suites of the mesh listener.
    public var incomingTLS = IncomingTLS()
    /// What was corrected in the configuration this snapshot was built from (logged when it changes).
    public var configurationWarnings: [String] = []

    public static let empty = GatewaySnapshot(
        version: 0, createdAt: Date(timeIntervalSince1970: 0), trustDomain: "", datacenter: "", rootPEMs: [], activeRootID: "",
        defaultIntentionPolicy: "deny", services: [:], sniTable: [:], notServed: [:], sanitizeXFCC: false
    )

    /// The service an SNI selects (ASCII case-insensitive, one trailing dot ignored).
    public func service(forSNI sni: String) -> ServedService? {
        sniTable[ServiceSNI.normalize(sni)].flatMap { services[$0] }
    }
}

/// One service the gateway answers for.
public struct ServedService: Sendable, Hashable {
    public var name: String
    public var snis: [String]
    public var lambda: LambdaSettings
    /// `http`, `http2` or `grpc`.
    public var protocolName: String
    /// The service-resolver `RequestTimeout`, when set.
    public var requestTimeout: Duration?
    /// Intentions with this service as destination, in the evaluator's form.
    public var intentions: [IntentionRule]
    public var leaf: ServiceLeaf
}

/// The leaf the gateway presents for a service.
public struct ServiceLeaf: Sendable, Hashable {
    public var certificatePEM: String
    public var privateKeyPEM: String
    public var serviceURI: String
    public var serial: String
    public var validAfter: Date
    public var validBefore: Date
    public var modifyIndex: UInt64
}

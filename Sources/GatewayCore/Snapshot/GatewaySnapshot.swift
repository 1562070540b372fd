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
    public var defaultIntentionPolicy: IntentionAction
    /// Served services by key (`ServedService.key`: the name, qualified outside the default scope).
    public var services: [String: ServedService]
    /// Lower-cased SNI → service key (docs/COMPATIBILITY.md, SNIs and certificates).
    public var sniTable: [String: String]
    /// Linked services that are not served, with the reason (logged, shown on `/config`, counted
    /// by kind in `/metrics`).
    public var notServed: [String: NotServedReason]
    /// `mesh` config: strip a client's x-forwarded-client-cert.
    public var sanitizeXFCC: Bool
    /// `mesh` config: the TLS versions and suites of the mesh listener.
    public var incomingTLS = IncomingTLS()
    /// The access log Consul's `proxy-defaults` (or the static file) configures, as written; the
    /// access log compiles it when it changes (`AccessLog`).
    public var accessLogs: AccessLogsConfig?
    /// What was corrected in the configuration this snapshot was built from (logged when it changes).
    public var configurationWarnings: [String] = []

    public static let empty = GatewaySnapshot(
        version: 0, createdAt: Date(timeIntervalSince1970: 0), trustDomain: "", datacenter: "", rootPEMs: [], activeRootID: "",
        defaultIntentionPolicy: .deny, services: [:], sniTable: [:], notServed: [:], sanitizeXFCC: false
    )

    /// The service an SNI selects (ASCII case-insensitive, one trailing dot ignored).
    public func service(forSNI sni: String) -> ServedService? {
        sniTable[ServiceSNI.normalize(sni)].flatMap { services[$0] }
    }
}

/// Why a linked service is not served: a text for logs and `/config`, and a kind for the `reason`
/// label of `lambda_gateway_services_not_served`, so an alert can tell "still starting" from
/// "misconfigured".
public struct NotServedReason: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        /// Something the service needs has not come from Consul yet.
        case waiting
        /// Linked, but no instance in the catalog (not registered, or deregistered).
        case noInstance = "no_instance"
        /// The leaf does not name the service, the datacenter or the trust domain.
        case invalidLeaf = "invalid_leaf"
        /// The protocol is not http, http2 or grpc.
        case notHTTP = "not_http"
        /// No Lambda settings in service-defaults or proxy-defaults.
        case notLambda = "not_lambda"
        /// Lambda settings that cannot be used (missing ARN, region against the ARN, unknown mode).
        case invalidLambdaConfig = "invalid_lambda_config"
        /// The gateway's token may not read the service's intentions (403).
        case intentionsForbidden = "intentions_forbidden"
    }

    public var kind: Kind
    public var text: String

    public init(_ kind: Kind, _ text: String) {
        self.kind = kind
        self.text = text
    }

    public var description: String { text }
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
    /// An intention Consul should never have sent (then `intentions` is empty): every request to
    /// the service is denied with it as the reason (docs/DECISIONS.md D28).
    public var invalidIntention: InvalidIntention? = nil
    public var leaf: ServiceLeaf
    /// Enterprise partition and namespace (`default` on CE).
    public var namespace = "default"
    public var partition = "default"

    /// Its name among the snapshot's services: the plain name in the default partition and
    /// namespace, `partition/namespace/name` elsewhere (`LinkedService.key`).
    public var key: String { ConsulScope(partition: partition, namespace: namespace).qualified(name) }
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

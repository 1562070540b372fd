import ConsulAPI
import Crypto
import Foundation
import LambdaInvoke
import LambdaPayload
import MeshIdentity
import SwiftASN1
import X509

/// A gateway configuration without Consul (`run --config FILE`, and what `dev` builds in memory):
/// the mesh trust, the served services with their leaf certificates, and their intentions.
/// `StaticConfigFile` reads it from YAML; `snapshot(version:now:)` turns it into what is served.
public struct StaticConfig: Sendable {
    public var trustDomain: String
    public var datacenter: String
    /// PEM of each CA root that signs callers' certificates.
    public var rootPEMs: [String]
    public var defaultIntentionPolicy: IntentionAction
    public var sanitizeForwardedClientCert: Bool
    /// The mesh listener's TLS versions and suites (the mesh entry's `TLS.Incoming`).
    public var incomingTLS = IncomingTLS()
    public var services: [Service]
    /// `accessLogs:`, Consul's `AccessLogs` block in the file's own key names.
    public var accessLogs: AccessLogsConfig?
    /// The file it was read from, named in errors.
    public var file: String?

    public struct Service: Sendable {
        public var name: String
        public var lambda: LambdaSettings
        public var protocolName: String
        public var requestTimeout: Duration?
        public var subsets: [String]
        public var certificatePEM: String
        public var privateKeyPEM: String
        public var intentions: [IntentionRule]

        public init(
            name: String, lambda: LambdaSettings, protocolName: String = "http", requestTimeout: Duration? = nil, subsets: [String] = [],
            certificatePEM: String, privateKeyPEM: String, intentions: [IntentionRule]
        ) {
            self.name = name
            self.lambda = lambda
            self.protocolName = protocolName
            self.requestTimeout = requestTimeout
            self.subsets = subsets
            self.certificatePEM = certificatePEM
            self.privateKeyPEM = privateKeyPEM
            self.intentions = intentions
        }
    }

    public init(trustDomain: String, datacenter: String, rootPEMs: [String], defaultIntentionPolicy: IntentionAction = .deny, sanitizeForwardedClientCert: Bool = false, services: [Service]) {
        self.trustDomain = trustDomain
        self.datacenter = datacenter
        self.rootPEMs = rootPEMs
        self.defaultIntentionPolicy = defaultIntentionPolicy
        self.sanitizeForwardedClientCert = sanitizeForwardedClientCert
        self.services = services
    }

    /// An intention from `source` (a service name or `*`) with a plain allow/deny action, with the
    /// precedence Consul gives it (Consul's intention precedence table: exact name 9, `*` 8).
    public static func intention(from source: String, action: IntentionAction?, permissions: [IntentionPermissionRule] = []) -> IntentionRule {
        IntentionRule(
            sourceName: source, sourceNamespace: "default", sourcePartition: "default", sourcePeer: "", sourceSamenessGroup: "", sourceType: "consul",
            action: permissions.isEmpty ? action : nil, permissions: permissions, requiresJWT: false, precedence: source == "*" ? 8 : 9
        )
    }

    /// The served snapshot. Every service's leaf is checked: it must parse, match its key, be
    /// valid now, and carry the service's SPIFFE ID (so a file never serves a wrong certificate).
    public func snapshot(version: UInt64, now: Date) throws(StaticConfigError) -> GatewaySnapshot {
        var snapshot = GatewaySnapshot.empty
        snapshot.version = version
        snapshot.createdAt = now
        snapshot.trustDomain = trustDomain
        snapshot.datacenter = datacenter
        snapshot.rootPEMs = rootPEMs
        snapshot.activeRootID = "static"
        snapshot.defaultIntentionPolicy = defaultIntentionPolicy
        snapshot.sanitizeXFCC = sanitizeForwardedClientCert
        snapshot.accessLogs = accessLogs
        snapshot.incomingTLS = incomingTLS
        for (index, service) in services.enumerated() {
            let path = "services[\(index)]"
            let leaf: ServiceLeaf
            do {
                leaf = try Self.leaf(for: service, path: path, trustDomain: trustDomain, datacenter: datacenter, now: now)
            } catch {
                var located = error
                located.file = file
                throw located
            }
            let snis =
                [ServiceSNI.make(service: service.name, datacenter: datacenter, trustDomain: trustDomain)]
                + service.subsets.map { ServiceSNI.make(service: service.name, subset: $0, datacenter: datacenter, trustDomain: trustDomain) }
            snapshot.services[service.name] = ServedService(
                name: service.name, snis: snis, lambda: service.lambda, protocolName: service.protocolName, requestTimeout: service.requestTimeout,
                intentions: service.intentions, leaf: leaf
            )
            for sni in snis { snapshot.sniTable[sni] = service.name }
        }
        return snapshot
    }

    static func leaf(for service: Service, path: String, trustDomain: String, datacenter: String, now: Date) throws(StaticConfigError) -> ServiceLeaf {
        func fail(_ key: String, _ message: String) -> StaticConfigError { StaticConfigError(path: "\(path).\(key)", message: message) }
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: service.certificatePEM)
        } catch {
            throw fail("certFile", "not a PEM certificate (\(error))")
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: service.privateKeyPEM)
        } catch {
            throw fail("keyFile", "not a PEM private key (\(error))")
        }
        guard key.publicKey == certificate.publicKey else { throw fail("keyFile", "the key does not belong to the certificate") }
        guard certificate.notValidBefore <= now, now < certificate.notValidAfter else {
            throw fail("certFile", "the certificate is not valid now (valid \(certificate.notValidBefore) to \(certificate.notValidAfter))")
        }
        let expected = SPIFFEID(trustDomain: trustDomain, datacenter: datacenter, service: service.name).description
        let uris = (try? certificate.spiffeURIs()) ?? []
        guard uris.contains(expected) else {
            throw fail("certFile", "the certificate's SPIFFE ID is \(uris.first ?? "missing"), expected \(expected)")
        }
        return ServiceLeaf(
            certificatePEM: service.certificatePEM, privateKeyPEM: service.privateKeyPEM, serviceURI: expected,
            serial: certificate.serialNumber.description, validAfter: certificate.notValidBefore, validBefore: certificate.notValidAfter, modifyIndex: 0
        )
    }
}

/// What is wrong with a static configuration: file, position when known, key path, problem.
public struct StaticConfigError: Error, CustomStringConvertible, Sendable {
    public var file: String?
    public var line: Int?
    public var column: Int?
    /// The key path, e.g. `services[1].arn`.
    public var path: String
    public var message: String

    public init(file: String? = nil, line: Int? = nil, column: Int? = nil, path: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    public var description: String {
        var location = file ?? "config"
        if let line { location += ":\(line)" + (column.map { ":\($0)" } ?? "") }
        return path.isEmpty ? "\(location): \(message)" : "\(location): \(path): \(message)"
    }
}

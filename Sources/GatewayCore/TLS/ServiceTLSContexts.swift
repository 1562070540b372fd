import Foundation
import NIOSSL
import Synchronization

/// One NIOSSL context per served service and leaf, built on first use and reused by every handshake
/// for that service until the leaf changes (parsing PEM and keys per handshake would be wasteful).
public final class ServiceTLSContexts: Sendable {
    struct Key: Hashable {
        var service: String
        var serial: String
        var modifyIndex: UInt64
        var tls: IncomingTLS
    }

    /// By service name: one context per service, for its current leaf and TLS settings. Built on
    /// the first handshake for the service, so 10,000 linked services that are never called cost
    /// no context, and a change to one service replaces only its own.
    private let contexts = Mutex<[String: (key: Key, context: NIOSSLContext)]>([:])
    /// The roots parsed for the snapshot version that last needed them: parsing every root PEM per
    /// handshake would put X.509 decoding on the connection path.
    private let verifier = Mutex<(version: UInt64, verifier: ClientCertificateVerifier)?>(nil)

    public init() {}

    /// The client-certificate verifier for `snapshot`'s roots and trust domain.
    public func verifier(for snapshot: GatewaySnapshot) -> ClientCertificateVerifier {
        if let cached = verifier.withLock({ $0 }), cached.version == snapshot.version { return cached.verifier }
        let built = ClientCertificateVerifier(rootPEMs: snapshot.rootPEMs, trustDomain: snapshot.trustDomain)
        verifier.withLock { $0 = (snapshot.version, built) }
        return built
    }

    /// The server context presenting `service`'s leaf and requiring a client certificate, with the
    /// mesh entry's versions and suites (`tls`). The certificate check itself is the connection's
    /// verification callback.
    public func context(for service: ServedService, tls: IncomingTLS = IncomingTLS()) throws -> NIOSSLContext {
        let key = Key(service: service.name, serial: service.leaf.serial, modifyIndex: service.leaf.modifyIndex, tls: tls)
        if let cached = contexts.withLock({ $0[service.name] }), cached.key == key { return cached.context }

        let chain = try NIOSSLCertificate.fromPEMBytes(Array(service.leaf.certificatePEM.utf8))
        let key2 = try NIOSSLPrivateKey(bytes: Array(service.leaf.privateKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key2))
        configuration.minimumTLSVersion = tls.minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        configuration.maximumTLSVersion = tls.maximumVersion == .tls12 ? .tlsv12 : .tlsv13
        // TLS 1.2 suites only (the entry's, else AEAD-only defaults): BoringSSL's TLS 1.3 suites are fixed.
        configuration.cipherSuiteValues = tls.cipherSuiteCodePoints.map { NIOTLSCipher(rawValue: $0) }
        configuration.certificateVerification = .noHostnameVerification
        // ALPN (Decision, §5.4 revised): every service speaks both protocols, so h2 whenever the
        // client offers it (the server's order wins), else http/1.1, else nothing (the first bytes
        // decide). Offering h2 only to http2/grpc services left TLS clients no way to HTTP/2 but
        // prior knowledge.
        configuration.applicationProtocols = ["h2", "http/1.1"]
        let context = try NIOSSLContext(configuration: configuration)
        // A new leaf or new settings replace the service's previous context.
        contexts.withLock { $0[service.name] = (key, context) }
        return context
    }
}

import Foundation
import NIOCore
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

    struct Entry {
        var key: Key
        var context: NIOSSLContext
        var lastUsed: NIODeadline
    }

    struct Contexts {
        var byService: [String: Entry] = [:]
        var lastSweep: NIODeadline
    }

    /// By service name: one context per service, for its current leaf and TLS settings. Built on
    /// the first handshake for the service, so 10,000 linked services that are never called cost
    /// no context, and a change to one service replaces only its own. A context no handshake used
    /// for `idleTimeout` is dropped (an unlinked service's, or one called once a day): memory
    /// follows the services in use, not every service ever called.
    private let contexts: Mutex<Contexts>
    let idleTimeout: TimeAmount
    private let clock: @Sendable () -> NIODeadline
    /// The roots parsed for the snapshot version that last needed them: parsing every root PEM per
    /// handshake would put X.509 decoding on the connection path.
    private let verifier = Mutex<(version: UInt64, verifier: ClientCertificateVerifier)?>(nil)

    public init(idleTimeout: TimeAmount = .minutes(10), clock: @escaping @Sendable () -> NIODeadline = { .now() }) {
        self.idleTimeout = idleTimeout
        self.clock = clock
        contexts = Mutex(Contexts(lastSweep: clock()))
    }

    /// How many contexts are held.
    var count: Int { contexts.withLock { $0.byService.count } }

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
        let now = clock()
        let cached = contexts.withLock { contexts -> NIOSSLContext? in
            sweep(&contexts, now: now)
            guard var entry = contexts.byService[service.name], entry.key == key else { return nil }
            entry.lastUsed = now
            contexts.byService[service.name] = entry
            return entry.context
        }
        if let cached { return cached }

        let chain = try NIOSSLCertificate.fromPEMBytes(Array(service.leaf.certificatePEM.utf8))
        let key2 = try NIOSSLPrivateKey(bytes: Array(service.leaf.privateKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key2))
        configuration.minimumTLSVersion = tls.minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        configuration.maximumTLSVersion = tls.maximumVersion == .tls12 ? .tlsv12 : .tlsv13
        // TLS 1.2 suites only (the entry's, else AEAD-only defaults): BoringSSL's TLS 1.3 suites are fixed.
        configuration.cipherSuiteValues = tls.cipherSuiteCodePoints.map { NIOTLSCipher(rawValue: $0) }
        configuration.certificateVerification = .noHostnameVerification
        // No trust store in the context: the client's chain is checked by the connection's
        // verification callback against the Consul roots (`ClientCertificateVerifier`). Left at its
        // default, each context loaded the system CA bundle, about 0.95 MB a context: 9.6 GB of RSS
        // after handshakes to 10,000 services (Benchmarks/scale.sh HANDSHAKES=10000).
        configuration.trustRoots = .certificates([])
        // ALPN (docs/DECISIONS.md D22): every service speaks both protocols, so h2 whenever the
        // client offers it (the server's order wins), else http/1.1, else nothing (the first bytes
        // decide). Offering h2 only to http2/grpc services left TLS clients no way to HTTP/2 but
        // prior knowledge.
        configuration.applicationProtocols = ["h2", "http/1.1"]
        let context = try NIOSSLContext(configuration: configuration)
        // A new leaf or new settings replace the service's previous context.
        contexts.withLock { $0.byService[service.name] = Entry(key: key, context: context, lastUsed: now) }
        return context
    }

    /// Drops the contexts idle for `idleTimeout`; looks at most once a quarter of it, so a
    /// handshake pays for the walk over all contexts only every few minutes.
    private func sweep(_ contexts: inout Contexts, now: NIODeadline) {
        guard now - contexts.lastSweep >= .nanoseconds(idleTimeout.nanoseconds / 4) else { return }
        contexts.lastSweep = now
        let cutoff = now - idleTimeout
        contexts.byService = contexts.byService.filter { $0.value.lastUsed > cutoff }
    }
}

import ConsulAPI
import Foundation
import GatewayCore
import Logging
import MeshIdentity
import NIOCore
import NIOPosix
import NIOSSL
import TestSupport
import Testing
import X509

/// A listener with the mesh TLS acceptor that answers each authenticated connection with one line:
/// `<service> <caller SPIFFE ID> <ALPN>`.
struct TLSFixture {
    let snapshots: SnapshotFixture
    let listener: Channel
    let metrics: GatewayMetrics
    var port: Int { listener.localAddress!.port! }
    let trustDomain = "11111111-2222-3333-4444-555555555555.consul"

    static func with(handshakeTimeout: TimeAmount = .seconds(5), _ body: (TLSFixture) async throws -> Void) async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { snapshots in
            try await snapshots.waitFor("both services") { $0.services.count == 2 }
            let metrics = GatewayMetrics()
            let acceptor = MeshTLSAcceptor(store: snapshots.store, metrics: metrics, logger: Logger(label: "tls"), handshakeTimeout: handshakeTimeout)
            let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    acceptor.configure(channel) { channel, connection in
                        guard case .mesh(let caller, _) = connection.caller else { return channel.close() }
                        let line = "\(connection.serviceName) \(caller) \(connection.negotiatedProtocol ?? "-")\n"
                        return channel.writeAndFlush(ByteBuffer(string: line))
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            let fixture = TLSFixture(snapshots: snapshots, listener: listener, metrics: metrics)
            try await withTeardown {
                try await body(fixture)
            } teardown: {
                try? await listener.close()
            }
        }
    }

    /// The handshake failures counted so far, by `reason` label.
    func handshakeFailures() -> [String: Double] {
        let text = PrometheusText(metrics.exposition(snapshot: snapshots.store.snapshot, inFlight: 0))
        var byReason: [String: Double] = [:]
        for reason in HandshakeFailure.allCases.map(\.label) {
            byReason[reason] = text.value("lambda_gateway_tls_handshake_failures_total", ["reason": reason])
        }
        return byReason
    }

    /// The handshake failures once `condition` holds for them (the server counts a failure when its
    /// side of the handshake ends, which can be just after the client's), or after 2 s.
    func handshakeFailures(until condition: ([String: Double]) -> Bool) async throws -> [String: Double] {
        let deadline = ContinuousClock.now + .seconds(2)
        var failures = handshakeFailures()
        while !condition(failures) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            failures = handshakeFailures()
        }
        return failures
    }

    func sni(_ service: String) -> String { "\(service).default.dc1.internal.\(trustDomain)" }

    func clientLeaf(_ service: String, ca: TestCA? = nil, trustDomain: String? = nil, uris: [String]? = nil, notValidAfter: Date = Date().addingTimeInterval(3600)) throws -> TestLeaf {
        let issuer = try ca ?? snapshots.consul.activeRootCA
        let uri = "spiffe://\(trustDomain ?? self.trustDomain)/ns/default/dc/dc1/svc/\(service)"
        return try issuer.issueLeaf(commonName: service, dnsNames: [], ipAddresses: [], uris: uris ?? [uri], notValidBefore: Date().addingTimeInterval(-7200), notValidAfter: notValidAfter)
    }

    struct Outcome {
        var line: String?
        var presentedURI: String?
        var presentedSerial: String?
        var error: (any Error)?
    }

    /// Connects like a sidecar: SNI, the mesh CA as trust anchor, an optional client certificate.
    func connect(sni: String?, client: TestLeaf?, alpn: [String] = [], maximumTLSVersion: TLSVersion? = nil, tweak: (inout TLSConfiguration) -> Void = { _ in }) async throws -> Outcome {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let maximumTLSVersion {
            configuration.minimumTLSVersion = .tlsv1
            configuration.maximumTLSVersion = maximumTLSVersion
        }
        tweak(&configuration)
        configuration.trustRoots = .certificates([try snapshots.consul.activeRootCA.nioCertificate])
        configuration.certificateVerification = .noHostnameVerification
        configuration.applicationProtocols = alpn
        if let client {
            configuration.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(client.certificatePEM.utf8), format: .pem))]
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(client.keyPEM.utf8), format: .pem))
        }
        let context = try NIOSSLContext(configuration: configuration)
        let collector = LineCollector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: sni))
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        let result = await collector.result(channel: channel)
        var presented: String?
        var serial: String?
        if let certificate = try? await channel.nioSSL_peerCertificate().get(), let parsed = try? Certificate(derEncoded: try certificate.toDERBytes()) {
            serial = parsed.serialNumber.description
            presented = try? parsed.extensions.subjectAlternativeNames.map { Array($0) }?.compactMap { name -> String? in
                if case .uniformResourceIdentifier(let uri) = name { return uri }
                return nil
            }.first
        }
        try? await channel.close()
        switch result {
        case .success(let line): return Outcome(line: line, presentedURI: presented, presentedSerial: serial)
        case .failure(let error): return Outcome(line: nil, presentedURI: presented, presentedSerial: serial, error: error)
        }
    }
}

/// Collects the first line the server sends, or the error that ended the connection.
final class LineCollector: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: touched only on the channel's event loop, and read after the promise completes.
    typealias InboundIn = ByteBuffer
    private var buffer = ""
    private var promise: EventLoopPromise<String>?

    func handlerAdded(context: ChannelHandlerContext) {
        promise = context.eventLoop.makePromise()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer += bytes.readString(length: bytes.readableBytes) ?? ""
        if let newline = buffer.firstIndex(of: "\n") {
            promise?.succeed(String(buffer[..<newline]))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(ChannelError.eof)
    }

    func result(channel: Channel) async -> Result<String, any Error> {
        let future = channel.eventLoop.flatSubmit { self.promise!.futureResult }
        do {
            return .success(try await future.get())
        } catch {
            return .failure(error)
        }
    }
}

@Suite("Mesh TLS: SNI, the service's leaf, client certificates (docs/ARCHITECTURE.md, Accept and TLS)", .serialized)
struct MeshTLSAcceptorTests {
    @Test func theServicesOwnLeafIsPresentedAndTheCallerIsIdentified() async throws {
        try await TLSFixture.with { fixture in
            for service in ["orders", "thumbnails"] {
                let outcome = try await fixture.connect(sni: fixture.sni(service), client: try fixture.clientLeaf("web"))
                #expect(outcome.error == nil, "\(String(describing: outcome.error))")
                #expect(outcome.presentedURI == "spiffe://\(fixture.trustDomain)/ns/default/dc/dc1/svc/\(service)")
                #expect(outcome.line == "\(service) spiffe://\(fixture.trustDomain)/ns/default/dc/dc1/svc/web -")
            }
        }
    }

    @Test func sniIsMatchedCaseInsensitively() async throws {
        try await TLSFixture.with { fixture in
            let outcome = try await fixture.connect(sni: fixture.sni("ORDERS").uppercased(), client: try fixture.clientLeaf("web"))
            #expect(outcome.line?.hasPrefix("orders ") == true, "\(String(describing: outcome.line)) \(String(describing: outcome.error))")
        }
    }

    /// docs/DECISIONS.md D22: every service speaks both protocols, so `h2` is chosen whenever offered,
    /// whatever the client's order and the service's protocol (both fixture services are `http`).
    @Test(arguments: [(["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"), (["http/1.1"], "http/1.1"), (["spdy/3"], "-"), ([], "-")] as [([String], String)])
    func alpnSelectsH2WheneverOfferedThenHTTP1(offered: [String], selected: String) async throws {
        try await TLSFixture.with { fixture in
            let outcome = try await fixture.connect(sni: fixture.sni("orders"), client: try fixture.clientLeaf("web"), alpn: offered)
            #expect(outcome.line?.hasSuffix(" \(selected)") == true, "\(String(describing: outcome.line)) \(String(describing: outcome.error))")
        }
    }

    @Test func unknownOrMissingSNIIsRefusedBeforeAnyCertificate() async throws {
        try await TLSFixture.with { fixture in
            let unknown = try await fixture.connect(sni: fixture.sni("billing"), client: try fixture.clientLeaf("web"))
            #expect(unknown.line == nil && unknown.presentedURI == nil)
            let missing = try await fixture.connect(sni: nil, client: try fixture.clientLeaf("web"))
            #expect(missing.line == nil && missing.presentedURI == nil)
            let failures = try await fixture.handshakeFailures { $0.values.reduce(0, +) >= 2 }
            #expect(failures["unknown_sni"] == 1 && failures["missing_sni"] == 1, "\(failures)")
            #expect(failures.values.reduce(0, +) == 2, "\(failures)")
        }
    }

    @Test func badClientCertificatesAreRefused() async throws {
        try await TLSFixture.with { fixture in
            let otherCA = try TestCA(commonName: "not the mesh CA")
            let cases: [(String, TestLeaf?)] = [
                ("no client certificate", nil),
                ("another CA", try fixture.clientLeaf("web", ca: otherCA)),
                ("expired", try fixture.clientLeaf("web", notValidAfter: Date().addingTimeInterval(-60))),
                ("foreign trust domain", try fixture.clientLeaf("web", trustDomain: "99999999-2222-3333-4444-555555555555.consul")),
                ("no SPIFFE ID", try fixture.clientLeaf("web", uris: [])),
                ("two SPIFFE IDs", try fixture.clientLeaf("web", uris: ["spiffe://\(fixture.trustDomain)/ns/default/dc/dc1/svc/a", "spiffe://\(fixture.trustDomain)/ns/default/dc/dc1/svc/b"])),
                ("agent ID", try fixture.clientLeaf("web", uris: ["spiffe://\(fixture.trustDomain)/agent/client/dc/dc1/id/x"])),
            ]
            for (name, leaf) in cases {
                let outcome = try await fixture.connect(sni: fixture.sni("orders"), client: leaf)
                #expect(outcome.line == nil, "\(name) was accepted")
            }
            // Each refusal is counted once, by its reason; BoringSSL refuses a missing certificate
            // itself, and that is still counted as missing, not as a TLS error.
            let failures = try await fixture.handshakeFailures { $0.values.reduce(0, +) >= Double(cases.count) }
            #expect(failures["no_client_certificate"] == 1, "\(failures)")
            #expect(failures["untrusted_client_certificate"] == 2, "\(failures)")
            #expect(failures["foreign_trust_domain"] == 1, "\(failures)")
            #expect(failures["no_service_identity"] == 3, "\(failures)")
            #expect(failures.values.reduce(0, +) == Double(cases.count), "\(failures)")
        }
    }

    @Test func oldTLSVersionsAndStalledHandshakesAreRefusedAndCounted() async throws {
        try await TLSFixture.with(handshakeTimeout: .milliseconds(300)) { fixture in
            let old = try await fixture.connect(sni: fixture.sni("orders"), client: try fixture.clientLeaf("web"), maximumTLSVersion: .tlsv11)
            #expect(old.line == nil && old.presentedURI == nil, "TLS 1.1 was accepted")
            let afterOld = try await fixture.handshakeFailures { $0["tls_error"] == 1 }
            #expect(afterOld["tls_error"] == 1, "\(afterOld)")

            // A caller that connects and never finishes its ClientHello is closed at the deadline.
            let stalled = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: fixture.port).get()
            try await stalled.writeAndFlush(ByteBuffer(bytes: [0x16, 0x03, 0x01]))
            let closed = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try? await stalled.closeFuture.get()
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(5))
                    return false
                }
                defer { group.cancelAll() }
                return try await group.next() ?? false
            }
            #expect(closed, "the stalled handshake was not closed")
            try? await stalled.close()
            let failures = try await fixture.handshakeFailures { $0["handshake_timeout"] == 1 }
            #expect(failures["handshake_timeout"] == 1 && failures.values.reduce(0, +) == 2, "\(failures)")
        }
    }

    @Test func theMeshEntrySetsVersionsAndSuitesForNewHandshakes() async throws {
        try await TLSFixture.with { fixture in
            let leaf = try fixture.clientLeaf("web")
            func accepted(_ tweak: @escaping (inout TLSConfiguration) -> Void) async throws -> Bool {
                try await fixture.connect(sni: fixture.sni("orders"), client: leaf, tweak: tweak).line != nil
            }
            let tls12Only: (inout TLSConfiguration) -> Void = {
                $0.minimumTLSVersion = .tlsv12
                $0.maximumTLSVersion = .tlsv12
            }
            let tls13Only: (inout TLSConfiguration) -> Void = {
                $0.minimumTLSVersion = .tlsv13
                $0.maximumTLSVersion = .tlsv13
            }
            // No mesh entry: TLS 1.2 and 1.3.
            #expect(try await accepted(tls12Only))
            #expect(try await accepted(tls13Only))

            try fixture.snapshots.consul.setConfigEntry(#"{"Kind":"mesh","Name":"mesh","TLS":{"Incoming":{"TLSMinVersion":"TLSv1_3"}}}"#)
            try await fixture.snapshots.waitFor("TLS 1.3 minimum") { $0.incomingTLS.minimumVersion == .tls13 }
            #expect(try await accepted(tls12Only) == false)
            #expect(try await accepted(tls13Only))

            // TLS 1.2 only, one suite: a client without it is refused, one with it is served.
            try fixture.snapshots.consul.setConfigEntry(
                #"{"Kind":"mesh","Name":"mesh","TLS":{"Incoming":{"TLSMinVersion":"TLSv1_0","TLSMaxVersion":"TLSv1_2","CipherSuites":["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384","TLS_MADE_UP"]}}}"#
            )
            let snapshot = try await fixture.snapshots.waitFor("TLS 1.2 maximum") { $0.incomingTLS.maximumVersion == .tls12 }
            #expect(snapshot.incomingTLS.minimumVersion == .tls12 && snapshot.incomingTLS.cipherSuites == ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"])
            #expect(try await accepted(tls13Only) == false)
            #expect(
                try await accepted {
                    tls12Only(&$0)
                    $0.cipherSuiteValues = [.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
                } == false)
            #expect(
                try await accepted {
                    tls12Only(&$0)
                    $0.cipherSuiteValues = [.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]
                })
        }
    }

    /// docs/DECISIONS.md D21: without `CipherSuites` TLS 1.2 is AEAD only; a CBC suite (LUCKY13) is
    /// accepted only when the mesh entry names it.
    @Test func cbcSuitesOnlyWhenTheMeshEntryNamesThem() async throws {
        try await TLSFixture.with { fixture in
            let leaf = try fixture.clientLeaf("web")
            func accepted(_ suite: NIOTLSCipher) async throws -> Bool {
                try await fixture.connect(sni: fixture.sni("orders"), client: leaf) {
                    $0.minimumTLSVersion = .tlsv12
                    $0.maximumTLSVersion = .tlsv12
                    $0.cipherSuiteValues = [suite]
                }.line != nil
            }
            for suite in [NIOTLSCipher.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256] {
                #expect(try await accepted(suite), "\(suite) was refused")
            }
            #expect(try await accepted(.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA) == false)
            #expect(try await accepted(.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA) == false)

            try fixture.snapshots.consul.setConfigEntry(
                #"{"Kind":"mesh","Name":"mesh","TLS":{"Incoming":{"CipherSuites":["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA","TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]}}}"#
            )
            try await fixture.snapshots.waitFor("CBC named") { !$0.incomingTLS.cipherSuites.isEmpty }
            #expect(try await accepted(.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA))
            #expect(try await accepted(.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384) == false)
        }
    }

    @Test func newHandshakesUseTheRotatedLeafAndRoots() async throws {
        try await TLSFixture.with { fixture in
            let before = try await fixture.snapshots.waitFor("orders") { $0.services["orders"] != nil }
            let old = try await fixture.connect(sni: fixture.sni("orders"), client: try fixture.clientLeaf("web"))
            #expect(old.presentedSerial == before.services["orders"]?.leaf.serial)
            try fixture.snapshots.consul.rotateRoots()
            let after = try await fixture.snapshots.waitFor("new leaf") { $0.rootPEMs.count == 2 && $0.services["orders"]?.leaf.serial != before.services["orders"]?.leaf.serial }
            // A caller with a certificate from the new root is accepted; so is one from the old root (both are anchors).
            let fresh = try await fixture.connect(sni: fixture.sni("orders"), client: try fixture.clientLeaf("web"))
            #expect(fresh.line?.hasPrefix("orders ") == true, "\(String(describing: fresh.error))")
            #expect(fresh.presentedSerial == after.services["orders"]?.leaf.serial)
            #expect(fresh.presentedSerial != old.presentedSerial)
        }
    }
}

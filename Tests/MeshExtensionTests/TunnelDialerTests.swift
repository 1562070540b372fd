import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

@testable import MeshExtension

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    let value = Mutex(NIODeadline.uptimeNanoseconds(1_000_000_000))
    func now() -> NIODeadline { value.withLock { $0 } }
    func advance(_ amount: TimeAmount) { value.withLock { $0 = $0 + amount } }
}

/// The dialer in process: spares renewed on INVOKE once too old, and the initial load's overall
/// budget (both in README.md, the `lambda-mesh-extension` lifecycle table).
@Suite struct TunnelDialerTests {
    static let trustDomain = "11111111-2222-3333-4444-555555555555.consul"

    @Test func anInvokeRenewsSparesTooOldToBeTaken() async throws {
        let ca = try TestCA()
        let upstream = try await MeshUpstreamServer(
            leaf: try ca.issueLeaf(commonName: "orders", dnsNames: [], ipAddresses: [], uris: ["spiffe://\(Self.trustDomain)/ns/default/dc/dc1/svc/orders"]),
            clientRoots: [ca]
        )
        let gateway = try await MeshGatewayStandIn()
        gateway.route("orders.default.dc1.internal.\(Self.trustDomain)", to: upstream.port)
        let settings = try ExtensionSettings(environment: [
            "CONSUL_MESH_GATEWAY_URI": "127.0.0.1:\(gateway.port)", "CONSUL_EXTENSION_DATA_PREFIX": "/data",
            "CONSUL_SERVICE_NAME": "caller", "CONSUL_SERVICE_UPSTREAMS": "orders:1234", "CONSUL_EXTENSION_WARM_CONNECTIONS": "1",
        ])
        let leaf = try ca.issueLeaf(commonName: "caller", dnsNames: [], ipAddresses: [], uris: ["spiffe://\(Self.trustDomain)/ns/default/dc/dc1/svc/caller"])
        let json =
            #"{"privateKeyPEM":\#(try TunnelTLSTests.quoted(leaf.keyPEM)),"certPEM":\#(try TunnelTLSTests.quoted(leaf.certificatePEM)),"rootCertPEM":\#(try TunnelTLSTests.quoted(ca.pem)),"trustDomain":"\#(Self.trustDomain)"}"#
        let tls = try TunnelTLS(data: try MeshTLSData(json: json, now: Date()), version: 1)
        let clock = ManualClock()
        let dialer = TunnelDialer(
            settings: settings, eventLoop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test"),
            spareLifetime: .seconds(30), clock: { clock.now() }
        )
        try await withTeardown(
            {
                dialer.use(tls, upstreams: settings.upstreams)
                try await eventually { upstream.handshakes == 1 }
                // Young: an INVOKE keeps it.
                clock.advance(.seconds(29))
                dialer.renewStaleSpares()
                #expect(dialer.spareCount(settings.upstreams[0]) == 1, "a young spare was closed")
                // No event says that no dial started: a short look for a second handshake.
                try await Task.sleep(for: .milliseconds(100))
                #expect(upstream.handshakes == 1)
                // Past its lifetime (as after a freeze between invocations): replaced at once.
                clock.advance(.seconds(2))
                dialer.renewStaleSpares()
                try await eventually { upstream.handshakes == 2 }
                // The new one is taken, not dialled again.
                let (_, spare) = try await dialer.connect(settings.upstreams[0]).get()
                #expect(spare)
            },
            teardown: {
                dialer.stop()
                await gateway.shutdown()
                await upstream.shutdown()
            })
    }

    @Test func theInitialLoadGivesUpWithinItsBudget() async throws {
        let source = MeshDataSource(
            frequency: .seconds(300), logger: Logger(label: "test"),
            fetch: {
                try await Task.sleep(for: .seconds(60))
                return "{}"
            },
            apply: { _ in }
        )
        let started = ContinuousClock.now
        await #expect(throws: MeshDataSource.LoadError.self) { try await source.load(budget: .milliseconds(800)) }
        #expect(ContinuousClock.now - started < .seconds(10), "a hanging Parameter Store must not use up Init")
    }
}

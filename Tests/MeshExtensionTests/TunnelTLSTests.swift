import Foundation
import Logging
import MeshIdentity
import NIOSSL
import Synchronization
import TestSupport
import Testing

@testable import MeshExtension

/// The peer check (exact SPIFFE ID, docs/DECISIONS.md D62) and the data source's refresh on INVOKE (D70).
@Suite struct TunnelTLSTests {
    static let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
    static let orders = SPIFFEID(trustDomain: trustDomain, datacenter: "dc1", service: "orders")

    static func peer(_ uris: [String]) throws -> NIOSSLCertificate {
        let leaf = try TestCA().issueLeaf(commonName: "peer", dnsNames: [], ipAddresses: [], uris: uris)
        return try NIOSSLCertificate(bytes: Array(try leaf.certificatePEM.utf8), format: .pem)
    }

    @Test func theUpstreamsOwnIDPasses() throws {
        #expect(TunnelTLS.checkPeer(try Self.peer([Self.orders.description]), expected: Self.orders) == nil)
        // The trust domain without case, as Consul compares it.
        let upper = "spiffe://\(Self.trustDomain.uppercased())/ns/default/dc/dc1/svc/orders"
        #expect(TunnelTLS.checkPeer(try Self.peer([upper]), expected: Self.orders) == nil)
    }

    @Test(arguments: [
        ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/billing"],
        ["spiffe://\(trustDomain)/ns/default/dc/dc2/svc/orders"],
        ["spiffe://\(trustDomain)/ns/other/dc/dc1/svc/orders"],
        ["spiffe://\(trustDomain)/ap/team/ns/default/dc/dc1/svc/orders"],
        ["spiffe://other.consul/ns/default/dc/dc1/svc/orders"],
        ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/ORDERS"],
        // Percent-encoded: equal once decoded, not byte for byte (the agent writes it plain).
        ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/%6Frders"],
        ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/orders/extra"],
        // The right ID behind another (the reference looked at the first only), or beside one.
        ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/billing", "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/orders"],
        ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/orders", "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/billing"],
        [],
    ])
    func anyOtherIdentityIsRefused(_ uris: [String]) throws {
        #expect(TunnelTLS.checkPeer(try Self.peer(uris), expected: Self.orders) != nil)
    }

    /// A URI SAN is IA5 (ASCII) in a certificate, but the comparison does not lean on that: under
    /// Swift's String comparison a KELVIN SIGN equals "K".
    @Test func theComparisonIsByteWise() {
        let expected = Array("spiffe://td/ns/default/dc/dc1/svc/Kiosk".utf8)
        #expect("spiffe://td/ns/default/dc/dc1/svc/\u{212A}iosk" == "spiffe://td/ns/default/dc/dc1/svc/Kiosk")
        #expect(!TunnelTLS.sameID(Array("spiffe://td/ns/default/dc/dc1/svc/\u{212A}iosk".utf8), expected, caseFoldedPrefix: 11))
        #expect(TunnelTLS.sameID(Array("SPIFFE://TD/ns/default/dc/dc1/svc/Kiosk".utf8), expected, caseFoldedPrefix: 11))
        #expect(!TunnelTLS.sameID(Array("spiffe://td/ns/default/dc/dc1/svc/kiosk".utf8), expected, caseFoldedPrefix: 11))
    }

    @Test func anInvokeAfterTheFrequencyReadsTheDataAgainAndBeforeItDoesNot() async throws {
        let ca = try TestCA()
        let leaf = try ca.issueLeaf(commonName: "caller", dnsNames: [], ipAddresses: [], uris: ["spiffe://\(Self.trustDomain)/ns/default/dc/dc1/svc/caller"])
        let value =
            #"{"privateKeyPEM":\#(try Self.quoted(leaf.keyPEM)),"certPEM":\#(try Self.quoted(leaf.certificatePEM)),"rootCertPEM":\#(try Self.quoted(ca.pem)),"trustDomain":"\#(Self.trustDomain)"}"#
        let reads = Mutex(0)
        let applied = Mutex<[Int]>([])
        let source = MeshDataSource(
            frequency: .seconds(1), logger: Logger(label: "test"),
            fetch: {
                reads.withLock { $0 += 1 }
                return value
            },
            apply: { tls in applied.withLock { $0.append(tls.version) } }
        )
        try await source.load()
        #expect(reads.withLock { $0 } == 1)
        // No timer runs (as while Lambda freezes the environment): only INVOKE reads.
        await source.invoked()
        // A read it started would run in the background: no event says that none did.
        try await Task.sleep(for: .milliseconds(50))
        #expect(reads.withLock { $0 } == 1, "not due yet")
        // Once the frequency has passed, an INVOKE reads (asked again until then, as each INVOKE asks).
        try await eventuallyAsync {
            await source.invoked()
            return reads.withLock { $0 } == 2
        }
        // The same data: no new TLS version for the dials.
        #expect(applied.withLock { $0 } == [1])
    }

    static func quoted(_ text: String) throws -> String {
        String(decoding: try JSONEncoder().encode(text), as: UTF8.self)
    }
}

func eventuallyAsync(_ condition: @Sendable () async -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { throw TestSupportError("condition not met within 10 s") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

import Foundation
import LambdaInvoke
import NIOCore
import Synchronization
import TestSupport
import Testing

@testable import GatewayCore

/// Contexts are built per service on first use, kept while used, and dropped once idle (issue 23:
/// memory follows the services in use, not every service ever called).
@Suite struct ServiceTLSContextsTests {
    /// A clock the test moves by hand.
    final class ManualClock: Sendable {
        let value = Mutex(NIODeadline.uptimeNanoseconds(1_000_000_000))
        func now() -> NIODeadline { value.withLock { $0 } }
        func advance(_ amount: TimeAmount) { value.withLock { $0 = $0 + amount } }
    }

    static func service(_ name: String, ca: TestCA) throws -> ServedService {
        let leaf = try ca.issueLeaf(commonName: name, uris: ["spiffe://example.consul/ns/default/dc/dc1/svc/\(name)"])
        return ServedService(
            name: name,
            snis: ["\(name).default.dc1.internal.example.consul"],
            lambda: LambdaSettings(
                function: try FunctionARN(parsing: "arn:aws:lambda:us-east-1:123456789012:function:\(name)"),
                payloadFormat: .envoy, passthrough: false, invocationType: .requestResponse
            ),
            protocolName: "http",
            requestTimeout: nil,
            intentions: [],
            leaf: ServiceLeaf(
                certificatePEM: try leaf.certificatePEM, privateKeyPEM: leaf.keyPEM, serviceURI: "spiffe://example.consul/ns/default/dc/dc1/svc/\(name)",
                serial: "\(name)-1", validAfter: leaf.certificate.notValidBefore, validBefore: leaf.certificate.notValidAfter, modifyIndex: 1
            )
        )
    }

    @Test func aContextIsReusedWhileUsedAndDroppedOnceIdle() throws {
        let ca = try TestCA()
        let clock = ManualClock()
        let contexts = ServiceTLSContexts(idleTimeout: .minutes(10), clock: { clock.now() })
        let (orders, billing, audit) = (try Self.service("orders", ca: ca), try Self.service("billing", ca: ca), try Self.service("audit", ca: ca))

        let first = try contexts.context(for: orders)
        _ = try contexts.context(for: billing)
        #expect(contexts.count == 2)
        // Used every few minutes: kept, and the same context.
        for _ in 0..<5 {
            clock.advance(.minutes(4))
            #expect(try contexts.context(for: orders) === first)
        }
        // billing was last used 20 minutes ago: the next handshake's sweep drops it.
        _ = try contexts.context(for: audit)
        #expect(contexts.count == 2)
        clock.advance(.minutes(11))
        _ = try contexts.context(for: audit)
        #expect(contexts.count == 1, "orders idle for 11 minutes is dropped too")
        // Called again after being dropped: built anew.
        #expect(try contexts.context(for: orders) !== first)
    }

    @Test func aNewLeafReplacesTheServicesContext() throws {
        let ca = try TestCA()
        let contexts = ServiceTLSContexts()
        var orders = try Self.service("orders", ca: ca)
        let first = try contexts.context(for: orders)
        orders.leaf.serial = "orders-2"
        orders.leaf.modifyIndex = 2
        #expect(try contexts.context(for: orders) !== first)
        #expect(contexts.count == 1)
    }
}

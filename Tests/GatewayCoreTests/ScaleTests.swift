import ConsulAPI
import GatewayCore
import TestSupport
import Testing

/// Many linked services against an agent that limits each client to 200 connections, as Consul does
/// (docs/DECISIONS.md D35). The benchmark (`Benchmarks/scale.sh`) goes to 10,000; CI runs 1,000 here.
@Suite("Scale: many services within the agent's connection limit")
struct ScaleTests {
    static let names = (0..<1_000).map { "fn-\($0)" }

    @Test func aThousandLinkedServicesAreServedWithinTheConnectionBudget() async throws {
        try await SnapshotFixture.with(
            settings: { $0.leafReads = LeafReadPolicy() },
            prepare: { consul in try consul.addLinkedLambdaServices(Self.names) }
        ) { fixture in
            let served = try await fixture.waitFor("1,000 served", timeout: .seconds(300)) { $0.services.count == 1_000 }
            #expect(served.notServed.isEmpty, "\(served.notServed.prefix(3))")
            // Before: one long poll per leaf, 1,000 connections wanted, 800 refused with 429.
            #expect(fixture.consul.refusedConnections == 0)
            #expect(fixture.consul.peakConnectionsPerClient <= ConsulConfiguration.defaultMaximumConnections)
            // Leaves are read without blocking; the only long polls are the 8 list watches.
            let leafReads = fixture.consul.requests.filter { $0.path.hasPrefix("/v1/agent/connect/ca/leaf/") }
            #expect(leafReads.count >= 1_000)
            #expect(leafReads.allSatisfy { !$0.uri.contains("index=") })

            // One more link is served, and one fewer is dropped, without touching the others.
            try fixture.consul.addLinkedLambdaServices(["fn-new"])
            let grown = try await fixture.waitFor("one more") { $0.services["fn-new"] != nil }
            #expect(grown.services.count == 1_001)
            #expect(grown.services["fn-7"]?.leaf == served.services["fn-7"]?.leaf)
        }
    }

    @Test func aSmallBudgetIsNeverExceeded() async throws {
        // Eight long polls (4 global, 4 for the scope) and leaf reads share 12 connections.
        try await SnapshotFixture.with(
            maximumConnections: 12,
            settings: { $0.leafReads = LeafReadPolicy() },
            prepare: { consul in try consul.addLinkedLambdaServices(Array(Self.names.prefix(200))) }
        ) { fixture in
            _ = try await fixture.waitFor("200 served", timeout: .seconds(120)) { $0.services.count == 200 }
            #expect(fixture.consul.peakConnectionsPerClient <= 12)
            #expect(fixture.consul.refusedConnections == 0)
        }
    }

    @Test func anAgentRefusingConnectionsIsBackedOffNotStormed() async throws {
        // The agent allows this client 6 connections; the gateway wants more (8 long polls alone).
        var options = ConsulTestServer.Options()
        options.maxConnectionsPerClient = 6
        try await SnapshotFixture.with(
            options: options,
            settings: { $0.watchPolicy = .init(wait: .seconds(10), baseBackoff: .milliseconds(500), maximumBackoff: .seconds(4)) },
            prepare: { consul in try consul.addLinkedLambdaServices(Array(Self.names.prefix(50))) }
        ) { fixture in
            try await Task.sleep(for: .seconds(6))
            // Each refused request waits 0.5 s, then 1, 2, 4 s before it tries again: a handful
            // of refusals per watch, not the ~600 a second a retry loop made.
            let refused = fixture.consul.refusedConnections
            #expect(refused > 0, "the limit was not reached: the test proves nothing")
            #expect(refused < 100, "\(refused) connections refused in 6 s")
        }
    }
}

import ConsulAPI
import Registrator
import TestSupport
import Testing

/// Enterprise (the partition and namespace tags: docs/COMPATIBILITY.md, Tags): namespaces listed per managed partition, each service
/// written and read in its own namespace.
@Suite(.serialized) struct RegistratorEnterpriseTests {
    typealias Fixture = RegistratorFixture
    let team = ConsulScope(partition: "default", namespace: "team")

    static var enterprise: ConsulTestServer.Options {
        var options = ConsulTestServer.Options()
        options.enterprise = true
        return options
    }

    @Test func servicesLiveInTheirNamespaceAndUnmanagedPartitionsAreIgnored() async throws {
        try await Fixture.with(Self.enterprise) { fixture in
            fixture.consul.createNamespace(team)
            try await fixture.lambda([
                ["op": "tag", "name": "orders", "tags": Fixture.enabled([FunctionTags.namespace: "team"])],
                ["op": "create", "name": "billing", "tags": Fixture.enabled([FunctionTags.partition: "ap9"])],
                ["op": "create", "name": "plain", "tags": Fixture.enabled()],
            ])
            let registrator = fixture.registrator {
                $0.enterprise = true
                $0.partitions = ["default"]
            }
            let report = await registrator.fullSync()
            #expect(report.upserted == 2, "\(report)")
            #expect(report.skipped == 1)
            #expect(fixture.consul.instances(of: "orders", scope: team).map(\.tags) == [[Registrator.managedTag]])
            #expect(fixture.consul.instances(of: "orders").isEmpty)
            let entry = try #require(fixture.consul.configEntryJSON(kind: "service-defaults", name: "orders", scope: team))
            #expect(entry.contains(#""Namespace":"team""#) && entry.contains(#""Partition":"default""#))
            #expect(fixture.consul.instances(of: "plain").count == 1)
            #expect(fixture.consul.requests.contains { $0.path == "/v1/namespaces" })

            // Unchanged: nothing written. Disabled: deleted from its namespace only.
            let writes = fixture.consulWrites.count
            #expect(await registrator.fullSync().upserted == 0)
            #expect(fixture.consulWrites.count == writes)
            try await fixture.lambda([["op": "untag", "name": "orders", "keys": [FunctionTags.enabled]]])
            let disabled = await registrator.fullSync()
            #expect(disabled.deleted == 1, "\(disabled)")
            #expect(fixture.consul.instances(of: "orders", scope: team).isEmpty)
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "orders", scope: team) == nil)
            #expect(fixture.consul.instances(of: "plain").count == 1)
        }
    }

    @Test func namespaceTagsOnCommunityEditionAreSkippedNotWritten() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": Fixture.enabled([FunctionTags.namespace: "team"])]])
            let report = await fixture.registrator().fullSync()
            #expect(report.upserted == 0 && report.skipped == 1 && !report.failed)
            #expect(fixture.consulWrites.isEmpty)
        }
    }
}

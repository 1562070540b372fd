import ConsulAPI
import Registrator
import TestSupport
import Testing

/// Events (docs/COMPATIBILITY.md, What it writes: Triggers) against moto and the Consul test server: an event syncs its function only.
@Suite(.serialized) struct RegistratorEventSyncTests {
    typealias Fixture = RegistratorFixture
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:"

    @Test func aTagEventSyncsThatFunctionOnly() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([
                ["op": "tag", "name": "orders", "tags": Fixture.enabled()],
                ["op": "create", "name": "billing", "tags": Fixture.enabled()],
            ])
            let report = await fixture.registrator().handle(.function(arn + "orders", eventName: "TagResource20170331v2"))
            #expect(report.upserted == 1 && !report.failed)
            #expect(fixture.managedNames() == ["orders"])
        }
    }

    @Test func aDeleteEventDeregistersTheFunctionsServicesAndAliases() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([
                ["op": "create", "name": "billing", "tags": Fixture.enabled([FunctionTags.aliases: "prod"])],
                ["op": "alias", "name": "billing", "alias": "prod"],
                ["op": "tag", "name": "orders", "tags": Fixture.enabled()],
            ])
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            #expect(fixture.managedNames() == ["orders", "billing", "billing-prod"])
            try await fixture.lambda([["op": "delete", "name": "billing"]])
            let report = await registrator.handle(.function("billing", eventName: "DeleteFunction20150331"))
            #expect(report.deleted == 2, "\(report)")
            #expect(fixture.managedNames() == ["orders"])
        }
    }

    @Test func deletingAVersionLeavesTheFunctionsServices() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": Fixture.enabled()]])
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            let report = await registrator.handle(.function(arn + "orders:3", eventName: "DeleteFunction20150331"))
            #expect(report.deleted == 0 && !report.failed, "\(report)")
            #expect(fixture.managedNames() == ["orders"])
        }
    }

    @Test func anEventsAliasNeverTakesTheNameOfAnotherFunction() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([
                ["op": "create", "name": "billing", "tags": Fixture.enabled([FunctionTags.aliases: "prod"])],
                ["op": "alias", "name": "billing", "alias": "prod"],
                ["op": "create", "name": "billing-prod"],
            ])
            let report = await fixture.registrator().handle(.function(arn + "billing", eventName: "TagResource"))
            #expect(report.upserted == 1)
            #expect(report.errors.map(\.function) == ["billing"])
            #expect(fixture.managedNames() == ["billing"])
        }
    }

    @Test func anEventWhoseFunctionCannotBeReadChangesNothingAndFails() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": Fixture.enabled()]])
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            fixture.proxy.add(.serviceError { $0.uri.contains("/functions/") })
            try await fixture.lambda([["op": "untag", "name": "orders", "keys": [FunctionTags.enabled]]])
            let report = await registrator.handle(.function(arn + "orders", eventName: "UntagResource"))
            #expect(report.failed)
            #expect(fixture.managedNames() == ["orders"])
        }
    }
}

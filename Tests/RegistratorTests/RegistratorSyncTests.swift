import AWSAPI
import ConsulAPI
import Foundation
import Registrator
import TestSupport
import Testing

/// Full syncs against moto's server (Lambda, SSM) and the Consul API test server (docs/DECISIONS.md D43 to D45, D55).
@Suite(.serialized) struct RegistratorSyncTests {
    typealias Fixture = RegistratorFixture
    let account = "arn:aws:lambda:us-east-1:123456789012:function:"

    /// orders (enabled, the fixture's function), billing (enabled, asynchronous, passthrough, aliases
    /// prod and gone, only prod exists), plain (untagged), bad (a bad invocation mode).
    func prepare(_ fixture: Fixture) async throws {
        try await fixture.lambda([
            ["op": "tag", "name": "orders", "tags": Fixture.enabled()],
            ["op": "create", "name": "billing", "tags": Fixture.enabled([FunctionTags.invocationMode: "Asynchronous", FunctionTags.payloadPassthrough: "true", FunctionTags.aliases: "prod+gone"])],
            ["op": "alias", "name": "billing", "alias": "prod"],
            ["op": "create", "name": "plain"],
            ["op": "create", "name": "bad", "tags": Fixture.enabled([FunctionTags.invocationMode: "sometimes"])],
        ])
    }

    @Test func aFullSyncWritesExactlyTheDocumentedEntriesAndInstances() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let report = await fixture.registrator().fullSync()
            #expect(report.listed == 4)
            #expect(report.upserted == 3)
            #expect(report.deleted == 0)
            #expect(!report.failed, "\(report.failures)")
            #expect(report.errors.map(\.function) == ["bad"])
            #expect(report.errors.first?.message.contains("\"sometimes\"") == true)

            #expect(fixture.managedNames() == ["orders", "billing", "billing-prod"])
            #expect(
                fixture.consul.configEntryJSON(kind: "service-defaults", name: "billing")
                    == #"{"EnvoyExtensions":[{"Arguments":{"ARN":"\#(account)billing","InvocationMode":"asynchronous","PayloadPassthrough":true},"Name":"builtin/aws/lambda","Required":false}],"Kind":"service-defaults","Name":"billing","Protocol":"http"}"#
            )
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "billing-prod")?.contains(#""ARN":"\#(account)billing:prod""#) == true)
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "bad") == nil)
            let instance = try #require(fixture.consul.instances(of: "orders").first)
            #expect(instance.node == "lambdas" && instance.id == "orders" && instance.tags == [Registrator.managedTag])
            #expect(fixture.consul.nodeMeta("lambdas") == ["external-node": "true", "external-probe": "true"])

            // Each service's entry is written before its instance: no instance without settings.
            let writes = fixture.consulWrites.map(\.path)
            for name in ["orders", "billing", "billing-prod"] {
                let entry = try #require(fixture.consulWrites.firstIndex { $0.path == "/v1/config" && $0.bodyText.contains(#""Name":"\#(name)""#) })
                let register = try #require(fixture.consulWrites.firstIndex { $0.path == "/v1/catalog/register" && $0.bodyText.contains(#""ID":"\#(name)""#) })
                #expect(entry < register, "\(writes)")
            }
            // Every call names the registrator's datacenter (docs/DECISIONS.md D49).
            #expect(fixture.consul.requests.allSatisfy { $0.uri.contains("dc=dc1") })
        }
    }

    @Test func aSecondSyncWithNothingChangedWritesNothing() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            let writesBefore = fixture.consulWrites.count
            let report = await registrator.fullSync()
            #expect(report.upserted == 0 && report.deleted == 0)
            #expect(fixture.consulWrites.count == writesBefore)
        }
    }

    @Test func changedTagsAndAnOperatorsProtocolChangeAreRepairedWhileTheOperatorsFieldsStay() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": [FunctionTags.invocationMode: "ASYNCHRONOUS"]]])
            try fixture.consul.setConfigEntry(
                #"{"Kind":"service-defaults","Name":"billing","Protocol":"tcp","Meta":{"owner":"team-a"},"EnvoyExtensions":[{"Name":"builtin/aws/lambda","Required":false,"Arguments":{"ARN":"\#(account)billing","InvocationMode":"asynchronous","PayloadPassthrough":true}}]}"#
            )
            let report = await registrator.fullSync()
            #expect(report.upserted == 2)
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "orders")?.contains(#""InvocationMode":"asynchronous""#) == true)
            let billing = try #require(fixture.consul.configEntryJSON(kind: "service-defaults", name: "billing"))
            #expect(billing.contains(#""Protocol":"http""#))
            #expect(billing.contains(#""Meta":{"owner":"team-a"}"#))
        }
    }

    @Test func anAliasRemovedFromTheTagsAndADisabledFunctionAreDeregisteredInstanceFirst() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            try await fixture.lambda([
                ["op": "tag", "name": "billing", "tags": [FunctionTags.aliases: "gone"]],
                ["op": "tag", "name": "orders", "tags": [FunctionTags.enabled: "false"]],
            ])
            let before = fixture.consulWrites.count
            let report = await registrator.fullSync()
            #expect(report.deleted == 2)
            #expect(fixture.managedNames() == ["billing"])
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "orders") == nil)
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "billing-prod") == nil)
            // docs/DECISIONS.md D57: the instance goes first, so no gateway serves a service without settings.
            let deletes = fixture.consulWrites.dropFirst(before).filter { $0.bodyText.contains("orders") || $0.path.hasSuffix("/orders") }
            #expect(deletes.map(\.path) == ["/v1/catalog/deregister", "/v1/config/service-defaults/orders"])
        }
    }

    @Test func aFunctionDeletedFromLambdaIsDeregisteredByACompleteListing() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            try await fixture.lambda([["op": "delete", "name": "orders"]])
            let report = await registrator.fullSync()
            #expect(report.deleted == 1)
            #expect(fixture.managedNames() == ["billing", "billing-prod"])
        }
    }

    @Test func throttledTagReadsNeverDeregisterAndFailOnlyThatFunction() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            // Every attempt at billing's tags is throttled.
            fixture.proxy.add(.throttling { $0.method == "GET" && $0.uri.contains("/tags/") && $0.uri.contains("billing") })
            let report = await registrator.fullSync()
            #expect(!report.failed)
            #expect(report.deleted == 0)
            #expect(report.errors.map(\.function).sorted() == ["bad", "billing"])
            #expect(fixture.managedNames() == ["orders", "billing", "billing-prod"])
            // Three attempts (docs/DECISIONS.md D56), then the function is UNKNOWN.
            #expect(fixture.proxy.faultedRequests.count == 3)
        }
    }

    @Test func aFailedListingPageDeletesNothingAndFailsTheRun() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            _ = await fixture.registrator().fullSync()
            try await fixture.lambda([["op": "delete", "name": "orders"], ["op": "tag", "name": "billing", "tags": [FunctionTags.enabled: "no"]]])
            // Page size 1: the first page answers, every later page fails.
            fixture.proxy.add(.serviceError { $0.uri.contains("/functions") && $0.uri.contains("Marker=") })
            let report = await fixture.registrator { $0.pageSize = 1 }.fullSync()
            #expect(report.failed)
            #expect(report.failures.first?.contains("ListFunctions") == true)
            #expect(report.listed == 1)
            // orders is absent from an incomplete listing: kept. billing is disabled, but only if listed.
            #expect(fixture.managedNames().contains("orders"))
        }
    }

    @Test func aConcurrentEditIsReadAgainAndTheWriteRetried() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            // The first config write loses its cas race (Consul answers `false`).
            fixture.consul.inject(.status(200, body: "false"), count: 1, pathPrefix: "/v1/config", method: "PUT")
            let report = await fixture.registrator().fullSync()
            #expect(report.upserted == 3 && report.errors.map(\.function) == ["bad"])
            #expect(fixture.consulWrites.filter { $0.path == "/v1/config" }.count == 4)
            #expect(fixture.managedNames() == ["orders", "billing", "billing-prod"])
        }
    }

    @Test func consulServerErrorsAreRetried() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            fixture.consul.inject(.status(500, body: "rpc error: No cluster leader"), count: 2, pathPrefix: "/v1/catalog/register")
            let report = await fixture.registrator().fullSync()
            #expect(report.upserted == 3, "\(report.errors)")
            #expect(fixture.managedNames() == ["orders", "billing", "billing-prod"])
        }
    }

    @Test func callsStayWithinMaxConcurrency() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda((0..<12).map { ["op": "create", "name": "fn-\($0)", "tags": Fixture.enabled()] })
            let report = await fixture.registrator { $0.maximumConcurrency = 2 }.fullSync()
            #expect(report.upserted == 12)
            #expect(fixture.proxy.peakInFlight == 2)
        }
    }

    @Test func listingIsPagedWithPageSize() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let report = await fixture.registrator { $0.pageSize = 1 }.fullSync()
            #expect(report.listed == 4)
            #expect(fixture.proxy.requests.filter { $0.uri.contains("/2015-03-31/functions/?") || $0.uri.hasSuffix("/2015-03-31/functions/") }.count == 4)
            #expect(fixture.proxy.requests.allSatisfy { !$0.uri.contains("/functions/?") || $0.uri.contains("MaxItems=1") })
        }
    }

    @Test func aManagedServiceNameCannotReachAnotherPathOrQuery() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            // A service someone registered with the managed tag and a name built to escape its path.
            let evil = "orders/../billing?dc=dc2"
            fixture.consul.registerInstance(evil)
            try fixture.consul.setConfigEntry(#"{"Kind":"service-defaults","Name":"\#(evil)","Protocol":"http"}"#)
            let writes = fixture.consulWrites.count
            let report = await registrator.fullSync()
            // No function can have that name: the registrator did not write it and leaves it alone.
            #expect(report.deleted == 0, "\(report)")
            #expect(fixture.consulWrites.count == writes)
            #expect(!fixture.consul.instances(of: evil).isEmpty)
            #expect(fixture.managedNames() == ["orders", "billing", "billing-prod"])
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "billing") != nil)
        }
    }

    @Test func aFunctionNamedLikeAServiceTheRegistratorDoesNotManageDoesNotTakeItOver() async throws {
        try await Fixture.with { fixture in
            // `orders` is a real mesh service on a real node; someone tags a function `orders`.
            fixture.consul.registerInstance("orders", node: "node-1", tags: [])
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": Fixture.enabled()]])
            let report = await fixture.registrator().fullSync()
            #expect(report.upserted == 0)
            #expect(report.errors.map(\.function) == ["orders"])
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "orders") == nil)
            #expect(fixture.consul.instances(of: "orders").map(\.node) == ["node-1"])
        }
    }

    @Test func onlyTheRegistratorsOwnNodeAndLambdaEntriesAreDeleted() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            // Another registrator's node (NODE_NAME=other) holds a service whose function is not here.
            fixture.consul.registerInstance("elsewhere", node: "other")
            try fixture.consul.setConfigEntry(
                #"{"Kind":"service-defaults","Name":"elsewhere","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"\#(account)elsewhere"}}]}"#)
            // An operator replaced orders' entry with one of their own, then orders is disabled.
            try fixture.consul.setConfigEntry(#"{"Kind":"service-defaults","Name":"orders","Protocol":"grpc"}"#)
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": [FunctionTags.enabled: "false"]]])
            let report = await registrator.fullSync()
            #expect(report.deleted == 1, "\(report)")
            #expect(fixture.consul.instances(of: "orders").isEmpty)
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "orders")?.contains("grpc") == true)
            #expect(fixture.consul.instances(of: "elsewhere").count == 1)
            #expect(fixture.consul.configEntryJSON(kind: "service-defaults", name: "elsewhere") != nil)
        }
    }

    @Test func aServiceInstanceMissingFromTheCatalogIsRegisteredAgain() async throws {
        try await Fixture.with { fixture in
            try await prepare(fixture)
            let registrator = fixture.registrator()
            _ = await registrator.fullSync()
            fixture.consul.deregisterInstance("orders")
            let report = await registrator.fullSync()
            #expect(report.upserted == 1)
            #expect(fixture.managedNames().contains("orders"))
        }
    }
}

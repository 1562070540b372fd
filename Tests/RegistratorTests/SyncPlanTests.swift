import ConsulAPI
import Foundation
import Registrator
import Testing

/// The sync plan (docs/DECISIONS.md D43 to D45), without I/O.
@Suite struct SyncPlanTests {
    static let account = "arn:aws:lambda:us-east-1:123456789012:function:"
    static let home = FunctionHome(partition: "aws", region: "us-east-1", accountID: "123456789012")

    static func entry(_ name: String, arn: String? = nil, mode: String = "synchronous", protocolName: String = "http") -> ServiceDefaults {
        let arn = arn ?? account + name
        let json =
            #"{"Kind":"service-defaults","Name":"\#(name)","Protocol":"\#(protocolName)","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Required":false,"Arguments":{"ARN":"\#(arn)","PayloadPassthrough":false,"InvocationMode":"\#(mode)"}}],"ModifyIndex":7}"#
        return try! JSONDecoder().decode(ServiceDefaults.self, from: Data(json.utf8))
    }

    static func desired(_ name: String, function: String? = nil, qualifier: String? = nil) -> DesiredService {
        let function = function ?? name
        let arn = account + function + (qualifier.map { ":" + $0 } ?? "")
        return DesiredService(name: name, function: function, arguments: LambdaArguments(arn: arn))
    }

    static func managed(_ name: String, arn: String? = nil, mode: String = "synchronous", protocolName: String = "http") -> ManagedService {
        ManagedService(name: name, entry: entry(name, arn: arn, mode: mode, protocolName: protocolName))
    }

    func key(_ name: String) -> ManagedService.Key { ManagedService(name: name, entry: nil).key }

    @Test func newFunctionsAreUpsertedAndCurrentOnesAreLeftAlone() {
        let plan = SyncPlan(
            functions: ["orders": .enabled([Self.desired("orders")]), "billing": .enabled([Self.desired("billing")])],
            listingComplete: true,
            existing: [Self.managed("billing")]
        )
        #expect(plan.upserts.map(\.service.name) == ["orders"])
        #expect(plan.unchanged.map(\.name) == ["billing"])
        #expect(plan.deletes.isEmpty)
    }

    @Test func changedTagsAreReappliedByAFullSync() {
        var asynchronous = Self.desired("orders")
        asynchronous.arguments.invocationMode = .asynchronous
        let plan = SyncPlan(functions: ["orders": .enabled([asynchronous])], listingComplete: true, existing: [Self.managed("orders")])
        #expect(plan.upserts.map(\.reason) == ["Lambda arguments changed"])
    }

    @Test func anOperatorsProtocolChangeIsRepaired() {
        let plan = SyncPlan(functions: ["orders": .enabled([Self.desired("orders")])], listingComplete: true, existing: [Self.managed("orders", protocolName: "tcp")])
        #expect(plan.upserts.count == 1)
        #expect(plan.upserts.first?.reason.contains("tcp") == true)
    }

    @Test func theReferencesUpperCaseModeIsRewritten() {
        let plan = SyncPlan(functions: ["orders": .enabled([Self.desired("orders")])], listingComplete: true, existing: [Self.managed("orders", mode: "SYNCHRONOUS")])
        #expect(plan.upserts.map(\.reason) == ["extension not in the documented form"])
    }

    @Test func aDisabledFunctionLosesItsServiceAndItsAliasServices() {
        let plan = SyncPlan(
            functions: ["orders": .disabled],
            listingComplete: true,
            existing: [Self.managed("orders"), Self.managed("orders-prod", arn: Self.account + "orders:prod"), Self.managed("billing")],
            home: Self.home
        )
        // billing's function is absent from a complete listing: it goes too.
        #expect(plan.deletes.map(\.service) == [key("billing"), key("orders"), key("orders-prod")])
        #expect(plan.deletes.map(\.reason).filter { $0.contains("not tagged enabled") }.count == 2)
        #expect(plan.keptForSafety.isEmpty)
    }

    @Test func anAliasRemovedFromAnEnabledFunctionsTagsIsDeleted() {
        let plan = SyncPlan(
            functions: ["orders": .enabled([Self.desired("orders")])],
            listingComplete: true,
            existing: [Self.managed("orders"), Self.managed("orders-prod", arn: Self.account + "orders:prod")]
        )
        #expect(plan.deletes.map(\.service) == [key("orders-prod")])
        #expect(plan.deletes.first?.reason.contains("no longer asks") == true)
    }

    @Test func aFunctionWhoseTagsCouldNotBeReadKeepsItsServices() {
        let plan = SyncPlan(
            functions: ["orders": .unknown("throttled")],
            listingComplete: true,
            existing: [Self.managed("orders"), Self.managed("orders-prod", arn: Self.account + "orders:prod")]
        )
        #expect(plan.deletes.isEmpty)
        #expect(plan.keptForSafety == [key("orders"), key("orders-prod")])
        #expect(plan.errors == [SyncPlan.FunctionError(function: "orders", message: "throttled")])
    }

    @Test func aBadTagValueNeitherWritesNorDeletes() {
        let plan = SyncPlan(functions: ["orders": .invalid("bad mode")], listingComplete: true, existing: [Self.managed("orders")])
        #expect(plan.upserts.isEmpty && plan.deletes.isEmpty)
        #expect(plan.errors.map(\.function) == ["orders"])
    }

    @Test func anIncompleteListingDeletesNothingForAbsentFunctions() {
        let existing = [Self.managed("orders"), Self.managed("billing")]
        let incomplete = SyncPlan(functions: ["orders": .enabled([Self.desired("orders")])], listingComplete: false, existing: existing)
        #expect(incomplete.deletes.isEmpty)
        #expect(incomplete.keptForSafety == [key("billing")])
        let complete = SyncPlan(functions: ["orders": .enabled([Self.desired("orders")])], listingComplete: true, existing: existing, home: Self.home)
        #expect(complete.deletes.map(\.service) == [key("billing")])
        // Nothing listed: whose account this is is not known, so absence proves nothing.
        let empty = SyncPlan(functions: [:], listingComplete: true, existing: existing, home: nil)
        #expect(empty.deletes.isEmpty)
    }

    @Test func anotherRegionsOrAccountsServicesAreKept() {
        let existing = [
            Self.managed("orders", arn: "arn:aws:lambda:eu-west-1:123456789012:function:orders"),
            Self.managed("billing", arn: "arn:aws:lambda:us-east-1:999999999999:function:billing"),
            Self.managed("stale"),
        ]
        let plan = SyncPlan(functions: [:], listingComplete: true, existing: existing, home: Self.home)
        #expect(plan.deletes.map(\.service) == [key("stale")])
        #expect(plan.keptForSafety == [key("billing"), key("orders")])
    }

    @Test func aServiceTheRegistratorDoesNotManageIsNeverTakenOver() {
        let plan = SyncPlan(
            functions: ["payments": .enabled([Self.desired("payments")]), "orders": .enabled([Self.desired("orders")])],
            listingComplete: true,
            existing: [],
            foreign: [key("payments")]
        )
        #expect(plan.upserts.map(\.service.name) == ["orders"])
        #expect(plan.errors.map(\.function) == ["payments"])
        #expect(plan.errors.first?.message.contains("not managed by the registrator") == true)
    }

    @Test func anAliasNeverTakesOverAnUnlistedFunctionsService() {
        // Incomplete listing: orders-prod (a function) was not listed, its service exists.
        let plan = SyncPlan(
            functions: ["orders": .enabled([Self.desired("orders"), Self.desired("orders-prod", function: "orders", qualifier: "prod")])],
            listingComplete: false,
            existing: [Self.managed("orders-prod")],
            otherOwners: [key("orders-prod"): "orders-prod"]
        )
        #expect(plan.upserts.map(\.service.name) == ["orders"])
        #expect(plan.deletes.isEmpty)
    }

    @Test func aServiceWithoutAnEntryBelongsToTheFunctionOfItsName() {
        let plan = SyncPlan(functions: ["orders": .disabled], listingComplete: false, existing: [ManagedService(name: "orders", entry: nil)])
        #expect(plan.deletes.map(\.service) == [key("orders")])
    }

    @Test func aFunctionsOwnNameWinsOverAnotherFunctionsAlias() {
        let plan = SyncPlan(
            functions: [
                "orders": .enabled([Self.desired("orders"), Self.desired("orders-prod", function: "orders", qualifier: "prod")]),
                "orders-prod": .enabled([Self.desired("orders-prod")]),
            ],
            listingComplete: true,
            existing: []
        )
        #expect(plan.upserts.map(\.service) == [Self.desired("orders"), Self.desired("orders-prod")])
        #expect(plan.errors.map(\.function) == ["orders"])
    }

    @Test func anEventNeverLetsAnAliasTakeOverAnotherFunctionsService() {
        let plan = SyncPlan(
            functions: ["orders": .enabled([Self.desired("orders"), Self.desired("orders-prod", function: "orders", qualifier: "prod")])],
            listingComplete: false,
            existing: [],
            otherOwners: [key("orders-prod"): "orders-prod"]
        )
        #expect(plan.upserts.map(\.service.name) == ["orders"])
        #expect(plan.errors.count == 1)
    }

    @Test func ignoredAndSkippedFunctionsKeepTheirServicesAndAreCounted() {
        let plan = SyncPlan(
            functions: ["orders": .ignored("dc2"), "billing": .skipped("namespace on CE")],
            listingComplete: true,
            existing: [Self.managed("orders"), Self.managed("billing")]
        )
        #expect(plan.deletes.isEmpty)
        #expect(plan.skipped.map(\.function) == ["billing", "orders"])
    }
}

import ConsulAPI
import Foundation
import GatewayCore
import MeshIdentity
import TestSupport
import Testing

/// What `caller` (a service of the default scope) may do to `service` in `snapshot`; nil when the
/// service is not served.
func isAllowed(_ snapshot: GatewaySnapshot, _ service: String, caller: String) -> Bool? {
    guard let served = snapshot.services[service] else { return nil }
    let id = SPIFFEID(trustDomain: snapshot.trustDomain, datacenter: snapshot.datacenter, service: caller)
    return served.authorization(defaultPolicy: snapshot.defaultIntentionPolicy).isAllowed(caller: id, request: AuthorizationRequest(method: "GET", path: "/"))
}

extension SnapshotFixture {
    /// Requests the gateway made to the intentions match endpoint.
    var matchRequests: [RecordedRequest] { consul.requests.filter { $0.path == "/v1/connect/intentions/match" } }
    var listRequests: [RecordedRequest] { consul.requests.filter { $0.path == "/v1/config/service-intentions" } }
}

@Suite("Intentions from the service-intentions list watch", .serialized)
struct IntentionsListWatchTests {
    @Test func aNewIntentionChangesTheServedDecisionThroughTheListAlone() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            let first = try await fixture.waitFor("both") { $0.services.count == 2 }
            #expect(first.defaultIntentionPolicy == .allow)
            #expect(isAllowed(first, "orders", caller: "api") == true)

            // A deny for every destination reaches both services.
            try fixture.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"api","Action":"deny"}]}"#)
            try await fixture.waitFor("api denied everywhere") {
                isAllowed($0, "orders", caller: "api") == false && isAllowed($0, "thumbnails", caller: "api") == false
            }
            // The service's own entry changes; the wildcard one still applies.
            try fixture.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"deny"}]}"#)
            let last = try await fixture.waitFor("web denied on orders") { isAllowed($0, "orders", caller: "web") == false }
            #expect(isAllowed(last, "thumbnails", caller: "web") == true)
            #expect(isAllowed(last, "orders", caller: "api") == false)
            // And back: an allow replaces the deny live.
            try fixture.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"allow"}]}"#)
            try await fixture.waitFor("web allowed on orders again") { isAllowed($0, "orders", caller: "web") == true }

            // A token that reads everything never needs the match query (issue 23).
            #expect(fixture.matchRequests.isEmpty, "\(fixture.matchRequests.map(\.uri))")
            #expect(fixture.listRequests.count >= 4)
        }
    }

    @Test func aListFilteredByACLsFallsBackToTheMatchQueryAndBackToTheList() async throws {
        var options = ConsulTestServer.Options()
        // Per-service rules only: the `*` destination's entry is hidden from the list (`conf/policies/consul-acl-gateway.hcl`).
        options.tokens = ["gateway": .init(deniedIntentionReads: ["*"])]
        try await SnapshotFixture.with(
            options: options, token: "gateway",
            prepare: { consul in
                try prepareTwoServices(consul)
                try consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"api","Action":"deny"}]}"#)
                // The match query fails twice (the watch's burst; the next try waits for its rate
                // limit): meanwhile nothing is served on the filtered list alone, which misses the deny.
                consul.inject(.status(500, body: "No cluster leader"), count: 2, pathPrefix: "/v1/connect/intentions/match")
            }
        ) { fixture in
            let waiting = try await fixture.waitFor("waiting for the match query") {
                $0.notServed["orders"] == NotServedReason(.waiting, "intentions not fetched yet") && !fixture.matchRequests.isEmpty
            }
            #expect(waiting.services.isEmpty)

            // The match answer carries the wildcard deny the token cannot list.
            let served = try await fixture.waitFor("both served from the match query") { $0.services.count == 2 }
            #expect(isAllowed(served, "orders", caller: "api") == false && isAllowed(served, "thumbnails", caller: "api") == false)
            #expect(isAllowed(served, "orders", caller: "web") == true)
            #expect(fixture.matchRequests.contains { ConsulTestServer.split($0.uri).1.filter { $0.0 == "name" }.count == 2 })
            // Changes still arrive, through the match query now.
            try fixture.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"api","Action":"deny"},{"Name":"web","Action":"deny"}]}"#)
            try await fixture.waitFor("web denied on thumbnails") { isAllowed($0, "thumbnails", caller: "web") == false }

            // The permission is granted, and the match query fails from now on: the next change
            // can only come through the list, complete again. (A policy change does not end a long
            // poll, in Consul either; the write does.)
            fixture.consul.setTokenRules("gateway", .init())
            fixture.consul.inject(.status(500, body: "No cluster leader"), count: 1_000, pathPrefix: "/v1/connect/intentions/match")
            try fixture.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"api","Action":"deny"}]}"#)
            let back = try await fixture.waitFor("web allowed on thumbnails, from the list") { isAllowed($0, "thumbnails", caller: "web") == true }
            #expect(isAllowed(back, "orders", caller: "api") == false && isAllowed(back, "thumbnails", caller: "api") == false)
            // And the match query has stopped: writes wake every long poll still open. No event
            // says that it stays stopped: a look longer than its largest backoff (0.2 s).
            let matchesBefore = fixture.matchRequests.count
            let listsBefore = fixture.listRequests.count
            for _ in 0..<3 {
                fixture.consul.touchConfigTable()
                try await Task.sleep(for: .milliseconds(150))
            }
            #expect(fixture.matchRequests.count == matchesBefore, "the match query stops")
            #expect(fixture.listRequests.count > listsBefore)
        }
    }

    /// An answer Consul would never give (it refuses to store such an intention) cannot be
    /// honoured, and dropping the bad permission could widen access: the service stays served and
    /// denies every request, with the reason naming the source and the field (docs/DECISIONS.md
    /// D28). Under the default policy allow, `api` (no intention) and `web` (an allow) were allowed.
    /// Through the list, and through the match query when ACLs filter the list.
    @Test(arguments: invalidPermissions, [false, true])
    func anAnswerConsulWouldNeverGiveDeniesEveryRequestOfItsServiceWithTheReason(_ invalid: InvalidPermissionCase, throughTheMatchQuery: Bool) async throws {
        var options = ConsulTestServer.Options()
        // The `*` entry hidden from the list: the scope's intentions come from the match query.
        if throughTheMatchQuery { options.tokens = ["gateway": .init(deniedIntentionReads: ["*"])] }
        let valid = #"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"allow"},{"Name":"billing","Permissions":[{"Action":"deny","HTTP":{"PathPrefix":"/admin"}}]}]}"#
        let garbage =
            #"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"allow"},{"Name":"billing","Permissions":[{"Action":"allow","HTTP":{"PathPrefix":"/orders"}},\#(invalid.permission)]}]}"#
        let prepare = { (consul: ConsulTestServer) in
            try prepareTwoServices(consul)
            try consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"reporting","Action":"allow"}]}"#)
        }
        try await SnapshotFixture.with(options: options, token: throughTheMatchQuery ? "gateway" : nil, prepare: prepare) { fixture in
            try fixture.consul.setConfigEntry(valid)
            let before = try await fixture.waitFor("orders served") { $0.services["orders"]?.intentions.contains { $0.sourceName == "billing" } == true }
            #expect(isAllowed(before, "orders", caller: "api") == true && isAllowed(before, "orders", caller: "web") == true)

            try fixture.consul.setConfigEntry(garbage)
            let refused = try await fixture.waitFor("orders refusing") { $0.services["orders"]?.invalidIntention != nil }
            let orders = try #require(refused.services["orders"])
            let reason = orders.authorization(defaultPolicy: refused.defaultIntentionPolicy).configurationError
            #expect(reason == "the intention from billing to orders is invalid: \(invalid.message)")
            for caller in ["api", "web", "billing"] { #expect(isAllowed(refused, "orders", caller: caller) == false, "\(caller)") }
            #expect(refused.notServed["orders"] == nil)
            // Only its own service.
            #expect(isAllowed(refused, "thumbnails", caller: "api") == true)
            #expect(throughTheMatchQuery == !fixture.matchRequests.isEmpty)

            // Fixed in Consul, honoured again.
            try fixture.consul.setConfigEntry(valid)
            try await fixture.waitFor("orders honoured again") { isAllowed($0, "orders", caller: "web") == true && $0.services["orders"]?.invalidIntention == nil }
        }
    }

    /// Consul never sets `X-Consul-Results-Filtered-By-ACLs` for the anonymous token, so without
    /// a token the list proves nothing when the agent's ACLs deny by default.
    @Test func withoutATokenAnAgentDenyingByDefaultIsAskedTheMatchQuery() async throws {
        var options = ConsulTestServer.Options()
        options.defaultACLPolicy = "deny"
        try await SnapshotFixture.with(options: options, prepare: prepareTwoServices) { fixture in
            let snapshot = try await fixture.waitFor("both") { $0.services.count == 2 }
            #expect(snapshot.services["orders"]?.intentions.map(\.sourceName) == ["web"])
            #expect(!fixture.matchRequests.isEmpty)
            #expect(!fixture.listRequests.isEmpty)
        }
    }
}

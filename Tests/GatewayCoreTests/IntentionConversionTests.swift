import ConsulAPI
import Foundation
import GatewayCore
import MeshIdentity
import Testing

@Suite("Intentions from Consul answers")
struct IntentionConversionTests {
    /// The shared example match answer for `orders` (test data), with the default policy deny.
    @Test func sharedExampleDecisions() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/testdata/consul/intentions-match-orders.json")
        let matches = try JSONDecoder().decode(IntentionMatches.self, from: try #require(FileManager.default.contents(atPath: url.path)))
        let evaluator = IntentionEvaluator(rules: try #require(matches["orders"]).map(IntentionRule.init), defaultPolicy: .deny)
        func caller(_ name: String) -> SPIFFEID { SPIFFEID(trustDomain: "11111111-2222-3333-4444-555555555555.consul", datacenter: "dc1", service: name) }
        #expect(evaluator.isAllowed(caller: caller("web"), request: AuthorizationRequest(method: "POST", path: "/x")))
        #expect(evaluator.isAllowed(caller: caller("billing"), request: AuthorizationRequest(method: "GET", path: "/orders/7", headers: [("x-tenant", "t")])))
        #expect(!evaluator.isAllowed(caller: caller("billing"), request: AuthorizationRequest(method: "GET", path: "/orders/7")))
        #expect(!evaluator.isAllowed(caller: caller("billing"), request: AuthorizationRequest(method: "GET", path: "/admin", headers: [("x-tenant", "t")])))
        #expect(!evaluator.isAllowed(caller: caller("other"), request: AuthorizationRequest(method: "GET", path: "/")))
    }

    /// Actions are read once, here, into `IntentionAction`: any case; an L7 intention's empty
    /// action is none; a value Consul never sends is none too, which denies (fails closed), and a
    /// permission with one denies.
    @Test func actionsAreTypedAtTheEdgeAndAnUnknownOneDenies() throws {
        func rule(_ json: String) throws -> IntentionRule {
            IntentionRule(try JSONDecoder().decode(Intention.self, from: Data(json.utf8)))
        }
        #expect(try rule(#"{"SourceName":"web","Action":"ALLOW","Precedence":9}"#).action == .allow)
        #expect(try rule(#"{"SourceName":"web","Action":"deny","Precedence":9}"#).action == .deny)
        let l7 = try rule(#"{"SourceName":"web","Action":"","Permissions":[{"Action":"allow","HTTP":{"PathPrefix":"/a"}},{"Action":"maybe"}],"Precedence":9}"#)
        #expect(l7.action == nil && l7.permissions.map(\.action) == [.allow, .deny])
        let unknown = try rule(#"{"SourceName":"web","Action":"maybe","Precedence":9}"#)
        #expect(unknown.action == nil)
        let caller = SPIFFEID(trustDomain: "11111111-2222-3333-4444-555555555555.consul", datacenter: "dc1", service: "web")
        #expect(!IntentionEvaluator(rules: [unknown], defaultPolicy: .allow).isAllowed(caller: caller, request: AuthorizationRequest(method: "GET", path: "/")))
    }

    @Test func jwtFieldsBecomeRequirements() throws {
        let intention = try JSONDecoder().decode(Intention.self, from: Data(#"{"SourceName":"web","Action":"allow","JWT":{"Providers":[{"Name":"okta"}]},"Precedence":9}"#.utf8))
        #expect(IntentionRule(intention).requiresJWT)
        let plain = try JSONDecoder().decode(Intention.self, from: Data(#"{"SourceName":"web","Action":"allow","JWT":null,"Precedence":9}"#.utf8))
        #expect(!IntentionRule(plain).requiresJWT)
    }
}

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
        let evaluator = IntentionEvaluator(rules: try #require(matches["orders"]).map { try IntentionRule($0, service: "orders") }, defaultPolicy: .deny)
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
            try IntentionRule(try JSONDecoder().decode(Intention.self, from: Data(json.utf8)), service: "orders")
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

    /// Consul's fields become one typed match each: `""` (Go's zero value) is not set; a header
    /// entry with no matcher is dropped, as Consul's Envoy configuration skips it.
    @Test func pathAndHeaderFieldsBecomeTypedMatches() throws {
        let json = #"""
            {"SourceName":"billing","Action":"","Precedence":9,"Permissions":[
              {"Action":"deny","HTTP":{"PathExact":"/admin","PathPrefix":"","Methods":["POST"]}},
              {"Action":"deny","HTTP":{"PathRegex":"/secret/.*"}},
              {"Action":"allow","HTTP":{"PathPrefix":"/orders","Header":[
                {"Name":"x-skipped","Invert":true},
                {"Name":"x-tenant","Present":true},
                {"Name":"x-role","Exact":"Ops","IgnoreCase":true},
                {"Name":"x-a","Prefix":"p","Exact":""},
                {"Name":"x-b","Suffix":"s","Invert":true},
                {"Name":"x-c","Contains":"c"},
                {"Name":"x-d","Regex":"d+"}]}},
              {"Action":"allow"}]}
            """#
        let rule = try IntentionRule(try JSONDecoder().decode(Intention.self, from: Data(json.utf8)), service: "orders")
        #expect(
            rule.permissions.map(\.http) == [
                HTTPRule(path: .exact("/admin"), methods: ["POST"]),
                HTTPRule(path: .regex("/secret/.*")),
                HTTPRule(
                    path: .prefix("/orders"),
                    headers: [
                        HeaderRule(name: "x-tenant", match: .present), HeaderRule(name: "x-role", match: .exact("Ops"), ignoreCase: true), HeaderRule(name: "x-a", match: .prefix("p")),
                        HeaderRule(name: "x-b", match: .suffix("s"), invert: true), HeaderRule(name: "x-c", match: .contains("c")), HeaderRule(name: "x-d", match: .regex("d+")),
                    ]),
                nil,
            ])
        // The dropped entry constrains nothing, as before: its header may be absent or present.
        let evaluator = IntentionEvaluator(rules: [rule], defaultPolicy: .deny)
        let caller = SPIFFEID(trustDomain: "11111111-2222-3333-4444-555555555555.consul", datacenter: "dc1", service: "billing")
        let headers = [("x-tenant", "t"), ("x-role", "ops"), ("x-a", "pa"), ("x-b", "b"), ("x-c", "aca"), ("x-d", "dd")]
        #expect(evaluator.isAllowed(caller: caller, request: AuthorizationRequest(method: "GET", path: "/orders/1", headers: headers)))
        #expect(evaluator.isAllowed(caller: caller, request: AuthorizationRequest(method: "GET", path: "/orders/1", headers: headers + [("x-skipped", "1")])))
        #expect(!evaluator.isAllowed(caller: caller, request: AuthorizationRequest(method: "POST", path: "/admin", headers: headers)))
        #expect(!evaluator.isAllowed(caller: caller, request: AuthorizationRequest(method: "GET", path: "/secret/x", headers: headers)))
    }

    /// What Consul's own validation refuses to store (more than one path field, more than one
    /// header matcher, a header without a name) is refused with the source, the destination and
    /// the field; the permission is never dropped (here a deny: dropping it would widen access).
    @Test(arguments: invalidPermissions)
    func aPermissionConsulWouldRefuseIsRefusedNamingTheSourceAndTheField(_ invalid: InvalidPermissionCase) throws {
        let json = #"{"SourceName":"billing","SourceNS":"default","Action":"","Precedence":9,"Permissions":[{"Action":"allow","HTTP":{"PathPrefix":"/orders"}},\#(invalid.permission)]}"#
        let intention = try JSONDecoder().decode(Intention.self, from: Data(json.utf8))
        let error = #expect(throws: InvalidIntention.self) { try IntentionRule(intention, service: "orders") }
        #expect(error?.description == "the intention from billing to orders is invalid: \(invalid.message)")
        // Outside the default scope, both ends are named with their partition and namespace.
        let scoped = #"{"SourceName":"billing","SourceNS":"sales","SourcePartition":"emea","Action":"","Precedence":9,"Permissions":[\#(invalid.permission)]}"#
        let scopedError = #expect(throws: InvalidIntention.self) {
            try IntentionRule(try JSONDecoder().decode(Intention.self, from: Data(scoped.utf8)), service: "emea/sales/orders")
        }
        #expect(scopedError?.source == "emea/sales/billing" && scopedError?.destination == "emea/sales/orders")
    }

    @Test func jwtFieldsBecomeRequirements() throws {
        let intention = try JSONDecoder().decode(Intention.self, from: Data(#"{"SourceName":"web","Action":"allow","JWT":{"Providers":[{"Name":"okta"}]},"Precedence":9}"#.utf8))
        #expect(try IntentionRule(intention, service: "orders").requiresJWT)
        let plain = try JSONDecoder().decode(Intention.self, from: Data(#"{"SourceName":"web","Action":"allow","JWT":null,"Precedence":9}"#.utf8))
        #expect(try !IntentionRule(plain, service: "orders").requiresJWT)
    }
}

/// A permission Consul's validation refuses, with what the error says about it.
struct InvalidPermissionCase: Sendable, CustomTestStringConvertible {
    var name: String
    /// The permission as JSON; it is the second of its intention's permissions.
    var permission: String
    /// The error's text after `is invalid: ` (the field is that of the second permission).
    var message: String
    var testDescription: String { name }
}

let invalidPermissions: [InvalidPermissionCase] = [
    .init(
        name: "two path fields", permission: #"{"Action":"deny","HTTP":{"PathExact":"/admin","PathPrefix":"/admin"}}"#,
        message: "Permissions[1].HTTP sets PathExact and PathPrefix; Consul allows at most one of PathExact, PathPrefix and PathRegex"),
    .init(
        name: "three path fields", permission: #"{"Action":"deny","HTTP":{"PathExact":"/admin","PathPrefix":"/admin","PathRegex":"/admin.*"}}"#,
        message: "Permissions[1].HTTP sets PathExact, PathPrefix and PathRegex; Consul allows at most one of PathExact, PathPrefix and PathRegex"),
    .init(
        name: "two header matchers", permission: #"{"Action":"deny","HTTP":{"Header":[{"Name":"x-tenant","Present":true},{"Name":"x-role","Exact":"guest","Prefix":"gu"}]}}"#,
        message: #"Permissions[1].HTTP.Header[1] ("x-role") sets Exact and Prefix; Consul allows one of Present, Exact, Prefix, Suffix, Contains and Regex"#),
    .init(
        name: "Present and Regex", permission: #"{"Action":"deny","HTTP":{"Header":[{"Name":"x-role","Present":true,"Regex":"guest.*"}]}}"#,
        message: #"Permissions[1].HTTP.Header[0] ("x-role") sets Present and Regex; Consul allows one of Present, Exact, Prefix, Suffix, Contains and Regex"#),
    .init(
        name: "a header without a name", permission: #"{"Action":"deny","HTTP":{"Header":[{"Name":"","Exact":"guest"}]}}"#,
        message: "Permissions[1].HTTP.Header[0] has no Name; Consul requires one"),
    .init(
        name: "a header without a name or a matcher", permission: #"{"Action":"deny","HTTP":{"Header":[{"Invert":true}]}}"#,
        message: "Permissions[1].HTTP.Header[0] has no Name; Consul requires one"),
]

import MeshIdentity
import Testing

func caller(_ service: String, namespace: String = "default", partition: String = "default") -> SPIFFEID {
    SPIFFEID(trustDomain: tdB, partition: partition, namespace: namespace, datacenter: "dc1", service: service)
}

/// The worked intentions for destination `orders`; `worked` below gives each case's verdicts.
let workedIntentions: [IntentionRule] = [
    IntentionRule(
        sourceName: "billing",
        action: nil,
        permissions: [
            IntentionPermissionRule(action: .deny, http: HTTPRule(path: .prefix("/admin"))),
            IntentionPermissionRule(action: .allow, http: HTTPRule(path: .prefix("/orders"), methods: ["GET", "HEAD"], headers: [HeaderRule(name: "x-tenant", match: .present)])),
        ],
        precedence: 9
    ),
    IntentionRule(sourceName: "web", action: .allow, precedence: 9),
    IntentionRule(sourceName: "*", action: .deny, precedence: 8),
    IntentionRule(sourceName: "reporting", action: .allow, precedence: 6),
]

@Suite("Intentions (docs/COMPATIBILITY.md, Intentions)")
struct IntentionEvaluatorTests {
    /// The gateway hands a request's headers to the evaluator only when a rule matches on one.
    @Test func saysWhetherAnyRuleReadsHeaders() {
        #expect(IntentionEvaluator(rules: workedIntentions, defaultPolicy: .deny).readsHeaders)
        let withoutHeaders = workedIntentions.map { rule in
            var rule = rule
            rule.permissions = rule.permissions.map { permission in
                var permission = permission
                permission.http?.headers = []
                return permission
            }
            return rule
        }
        #expect(!IntentionEvaluator(rules: withoutHeaders, defaultPolicy: .deny).readsHeaders)
        #expect(!IntentionEvaluator(rules: [], defaultPolicy: .allow).readsHeaders)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var row: String
        var caller: SPIFFEID?
        var method: String
        var path: String
        var headers: [String: String]
        var allowedWhenDefaultDeny: Bool
        var allowedWhenDefaultAllow: Bool
        var testDescription: String { "row \(row)" }
    }

    static let worked: [Case] = [
        Case(row: "A", caller: caller("web"), method: "POST", path: "/anything", headers: [:], allowedWhenDefaultDeny: true, allowedWhenDefaultAllow: true),
        Case(row: "B", caller: caller("billing"), method: "GET", path: "/orders/1", headers: ["X-Tenant": "t1"], allowedWhenDefaultDeny: true, allowedWhenDefaultAllow: true),
        Case(row: "C", caller: caller("billing"), method: "GET", path: "/orders/1", headers: [:], allowedWhenDefaultDeny: false, allowedWhenDefaultAllow: true),
        Case(row: "D", caller: caller("billing"), method: "GET", path: "/admin/users", headers: ["x-tenant": "t1"], allowedWhenDefaultDeny: false, allowedWhenDefaultAllow: false),
        Case(row: "E", caller: caller("billing"), method: "POST", path: "/orders", headers: ["x-tenant": "t1"], allowedWhenDefaultDeny: false, allowedWhenDefaultAllow: true),
        Case(row: "F", caller: caller("api"), method: "GET", path: "/", headers: [:], allowedWhenDefaultDeny: false, allowedWhenDefaultAllow: false),
        Case(row: "R", caller: caller("reporting"), method: "GET", path: "/", headers: [:], allowedWhenDefaultDeny: true, allowedWhenDefaultAllow: false),
        Case(row: "N", caller: nil, method: "GET", path: "/", headers: [:], allowedWhenDefaultDeny: false, allowedWhenDefaultAllow: true),
    ]

    @Test(arguments: worked)
    func workedCases(example: Case) {
        let request = AuthorizationRequest(method: example.method, path: example.path, headers: example.headers.map { ($0.key, $0.value) })
        #expect(IntentionEvaluator(rules: workedIntentions, defaultPolicy: .deny).isAllowed(caller: example.caller, request: request) == example.allowedWhenDefaultDeny)
        #expect(IntentionEvaluator(rules: workedIntentions, defaultPolicy: .allow).isAllowed(caller: example.caller, request: request) == example.allowedWhenDefaultAllow)
    }

    @Test func orderInTheListDoesNotMatterOnlyPrecedence() {
        let shuffled = [workedIntentions[3], workedIntentions[2], workedIntentions[1], workedIntentions[0]]
        let evaluator = IntentionEvaluator(rules: shuffled, defaultPolicy: .deny)
        #expect(evaluator.isAllowed(caller: caller("web"), request: AuthorizationRequest(method: "GET", path: "/")))
        #expect(!evaluator.isAllowed(caller: caller("api"), request: AuthorizationRequest(method: "GET", path: "/")))
    }

    @Test func peersSamenessGroupsForeignTypesAndDuplicatesAreIgnored() {
        let rules = [
            IntentionRule(sourceName: "web", sourcePeer: "other-cluster", action: .allow, precedence: 9),
            IntentionRule(sourceName: "web", sourceSamenessGroup: "group", action: .allow, precedence: 9),
            IntentionRule(sourceName: "web", sourceType: "external-uri", action: .allow, precedence: 9),
            IntentionRule(sourceName: "api", action: .deny, precedence: 9),
            IntentionRule(sourceName: "api", action: .allow, precedence: 9),
        ]
        let evaluator = IntentionEvaluator(rules: rules, defaultPolicy: .deny)
        #expect(!evaluator.isAllowed(caller: caller("web"), request: AuthorizationRequest(method: "GET", path: "/")))
        #expect(!evaluator.isAllowed(caller: caller("api"), request: AuthorizationRequest(method: "GET", path: "/")))
    }

    @Test func namespaceAndPartitionMustMatch() {
        let evaluator = IntentionEvaluator(rules: [IntentionRule(sourceName: "web", sourceNamespace: "team", action: .allow, precedence: 9)], defaultPolicy: .deny)
        #expect(evaluator.isAllowed(caller: caller("web", namespace: "team"), request: AuthorizationRequest(method: "GET", path: "/")))
        #expect(!evaluator.isAllowed(caller: caller("web"), request: AuthorizationRequest(method: "GET", path: "/")))
        #expect(!evaluator.isAllowed(caller: caller("web", namespace: "team", partition: "emea"), request: AuthorizationRequest(method: "GET", path: "/")))
    }

    @Test func jwtRequirementsFailClosed() {
        let rules = [
            IntentionRule(sourceName: "web", action: .allow, requiresJWT: true, precedence: 9),
            IntentionRule(sourceName: "api", action: nil, permissions: [IntentionPermissionRule(action: .allow, requiresJWT: true)], precedence: 9),
        ]
        let evaluator = IntentionEvaluator(rules: rules, defaultPolicy: .allow)
        #expect(!evaluator.isAllowed(caller: caller("web"), request: AuthorizationRequest(method: "GET", path: "/")))
        #expect(!evaluator.isAllowed(caller: caller("api"), request: AuthorizationRequest(method: "GET", path: "/")))
    }

    @Test func pathRulesExactPrefixAndWholeRegex() {
        func allowed(_ http: HTTPRule, _ method: String, _ path: String) -> Bool {
            IntentionEvaluator(rules: [IntentionRule(sourceName: "web", action: nil, permissions: [IntentionPermissionRule(action: .allow, http: http)], precedence: 9)], defaultPolicy: .deny)
                .isAllowed(caller: caller("web"), request: AuthorizationRequest(method: method, path: path))
        }
        #expect(allowed(HTTPRule(path: .exact("/a")), "GET", "/a"))
        #expect(!allowed(HTTPRule(path: .exact("/a")), "GET", "/a/b"))
        #expect(allowed(HTTPRule(path: .prefix("/ord")), "GET", "/orders"))  // plain string prefix
        #expect(allowed(HTTPRule(path: .regex("/orders/[0-9]+")), "GET", "/orders/42"))
        #expect(!allowed(HTTPRule(path: .regex("/orders/[0-9]+")), "GET", "/orders/42/items"))  // whole path
        #expect(!allowed(HTTPRule(methods: ["GET"]), "get", "/"))  // case-sensitive
    }

    @Test func headerMatcherTable() {
        func allowed(_ header: HeaderRule, _ headers: [(String, String)]) -> Bool {
            IntentionEvaluator(
                rules: [IntentionRule(sourceName: "web", action: nil, permissions: [IntentionPermissionRule(action: .allow, http: HTTPRule(headers: [header]))], precedence: 9)], defaultPolicy: .deny
            )
            .isAllowed(caller: caller("web"), request: AuthorizationRequest(method: "GET", path: "/", headers: headers))
        }
        #expect(!allowed(HeaderRule(name: "x", match: .present), []))
        #expect(allowed(HeaderRule(name: "x", match: .present, invert: true), []))
        #expect(!allowed(HeaderRule(name: "x", match: .exact("a"), invert: true), []))  // value matchers never match a missing header
        #expect(allowed(HeaderRule(name: "X", match: .present), [("x", "1")]))
        #expect(!allowed(HeaderRule(name: "x", match: .present, invert: true), [("x", "1")]))
        #expect(allowed(HeaderRule(name: "x", match: .exact("a,b")), [("x", "a"), ("X", "b")]))  // values joined with ","
        #expect(allowed(HeaderRule(name: "x", match: .exact("ABC"), ignoreCase: true), [("x", "abc")]))
        #expect(!allowed(HeaderRule(name: "x", match: .exact("ABC")), [("x", "abc")]))
        #expect(allowed(HeaderRule(name: "x", match: .prefix("ab")), [("x", "abc")]))
        #expect(allowed(HeaderRule(name: "x", match: .suffix("bc")), [("x", "abc")]))
        #expect(allowed(HeaderRule(name: "x", match: .contains("b")), [("x", "abc")]))
        #expect(allowed(HeaderRule(name: "x", match: .regex("a.c")), [("x", "abc")]))
        #expect(!allowed(HeaderRule(name: "x", match: .regex("a.c")), [("x", "abcd")]))
        #expect(allowed(HeaderRule(name: "x", match: .exact("a"), invert: true), [("x", "b")]))
    }

    /// Consul and Envoy compare bytes; text Swift holds canonically equal is still different text.
    @Test func matchesCompareBytesNotCanonicalEquivalence() {
        func allowed(_ http: HTTPRule, path: String, headers: [(String, String)] = [], source: String = "web", caller service: String = "web") -> Bool {
            IntentionEvaluator(rules: [IntentionRule(sourceName: source, action: nil, permissions: [IntentionPermissionRule(action: .allow, http: http)], precedence: 9)], defaultPolicy: .deny)
                .isAllowed(caller: caller(service), request: AuthorizationRequest(method: "GET", path: path, headers: headers))
        }
        let combining = "\u{301}"
        // "/admin" + U+0301 starts with the bytes of "/admin" (Swift's hasPrefix says no).
        #expect(allowed(HTTPRule(path: .prefix("/admin")), path: "/admin" + combining))
        #expect(allowed(HTTPRule(path: .regex("/admin.*")), path: "/admin" + combining))
        #expect(allowed(HTTPRule(path: .regex("/admin.")), path: "/admin" + combining))
        #expect(allowed(HTTPRule(headers: [HeaderRule(name: "x", match: .prefix("guest"))]), path: "/", headers: [("x", "guest" + combining)]))
        #expect(allowed(HTTPRule(headers: [HeaderRule(name: "x", match: .suffix(combining))]), path: "/", headers: [("x", "guest" + combining)]))
        #expect(allowed(HTTPRule(headers: [HeaderRule(name: "x", match: .contains("t" + combining))]), path: "/", headers: [("x", "guest" + combining + "x")]))
        // NFC "é" and NFD "e" + U+0301 are equal to Swift, different to Consul and Envoy.
        #expect(!allowed(HTTPRule(path: .exact("/caf\u{E9}")), path: "/cafe" + combining))
        #expect(!allowed(HTTPRule(), path: "/", source: "caf\u{E9}", caller: "cafe" + combining))
        #expect(allowed(HTTPRule(), path: "/", source: "cafe" + combining, caller: "cafe" + combining))
        // ignore_case folds ASCII only: the Kelvin sign is not "k".
        #expect(!allowed(HTTPRule(headers: [HeaderRule(name: "x", match: .exact("k"), ignoreCase: true)]), path: "/", headers: [("x", "\u{212A}")]))
        #expect(allowed(HTTPRule(headers: [HeaderRule(name: "x", match: .exact("K"), ignoreCase: true)]), path: "/", headers: [("x", "k")]))
    }

    @Test func sourcesThatDifferOnlyInNormalizationAreTwoSources() {
        let rules = [
            IntentionRule(sourceName: "caf\u{E9}", action: .deny, precedence: 9),
            IntentionRule(sourceName: "cafe\u{301}", action: .allow, precedence: 9),
        ]
        let evaluator = IntentionEvaluator(rules: rules, defaultPolicy: .deny)
        #expect(evaluator.isAllowed(caller: caller("cafe\u{301}"), request: AuthorizationRequest(method: "GET", path: "/")))
        #expect(!evaluator.isAllowed(caller: caller("caf\u{E9}"), request: AuthorizationRequest(method: "GET", path: "/")))
    }

    @Test func aRegexThatDoesNotCompileDeniesEverything() {
        let rules = [
            IntentionRule(sourceName: "web", action: .allow, precedence: 9),
            IntentionRule(sourceName: "api", action: nil, permissions: [IntentionPermissionRule(action: .allow, http: HTTPRule(path: .regex("(unclosed")))], precedence: 9),
        ]
        let evaluator = IntentionEvaluator(rules: rules, defaultPolicy: .allow)
        #expect(evaluator.configurationError?.contains("(unclosed") == true)
        #expect(!evaluator.isAllowed(caller: caller("web"), request: AuthorizationRequest(method: "GET", path: "/")))
    }

    /// What the reader of the rules found wrong (an intention Consul should never have sent) denies
    /// every request the same way, with its own message; the same rules without it allow.
    @Test func aProblemFoundWhereTheRulesWereReadDeniesEverything() {
        let rules = [IntentionRule(sourceName: "web", action: .allow, precedence: 9)]
        let request = AuthorizationRequest(method: "GET", path: "/")
        let refused = IntentionEvaluator(rules: rules, defaultPolicy: .allow, invalid: "the intention from api to orders is invalid")
        #expect(refused.configurationError == "the intention from api to orders is invalid")
        #expect(!refused.isAllowed(caller: caller("web"), request: request))
        #expect(!refused.isAllowed(caller: caller("other"), request: request))
        let honoured = IntentionEvaluator(rules: rules, defaultPolicy: .allow)
        #expect(honoured.configurationError == nil && honoured.isAllowed(caller: caller("web"), request: request))
    }
}

import ConsulAPI
import Foundation
import Logging
import MeshIdentity
import NIOPosix
import TestSupport
import Testing

@testable import GatewayCore

/// A set of `service-intentions` entries and the destinations to compare on.
struct IntentionsConfiguration: Sendable, CustomTestStringConvertible {
    var name: String
    var entries: [String]
    var destinations: [String]
    var scope = ConsulScope.default

    var testDescription: String { name }
}

let intentionsConfigurations: [IntentionsConfiguration] = [
    .init(
        name: "exact sources",
        entries: [#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"allow"},{"Name":"billing","Action":"deny"}]}"#],
        destinations: ["orders", "thumbnails"]
    ),
    .init(
        name: "a * source written before the exact one",
        entries: [#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"*","Action":"deny"},{"Name":"web","Action":"allow"}]}"#],
        destinations: ["orders"]
    ),
    .init(
        name: "a * destination only",
        entries: [#"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"reporting","Action":"allow"},{"Name":"*","Action":"deny"}]}"#],
        destinations: ["orders", "thumbnails"]
    ),
    .init(
        name: "* sources and a * destination",
        entries: [
            #"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"allow"},{"Name":"*","Action":"deny"}]}"#,
            #"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"reporting","Action":"allow"},{"Name":"api","Action":"deny"},{"Name":"*","Action":"allow"}]}"#,
        ],
        destinations: ["orders", "thumbnails"]
    ),
    .init(name: "the worked cases for orders", entries: workedCaseEntries, destinations: ["orders", "other"]),
    .init(
        name: "L7 permissions with a regex and a JWT",
        entries: [
            #"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Permissions":[{"Action":"deny","HTTP":{"PathRegex":"/admin/.*"}},{"Action":"allow","HTTP":{"Methods":["GET"],"Header":[{"Name":"x-role","Exact":"Ops","IgnoreCase":true}]}},{"Action":"allow","HTTP":{"PathPrefix":"/orders"},"JWT":{"Providers":[{"Name":"okta"}]}}]},{"Name":"*","Action":"deny"}]}"#
        ],
        destinations: ["orders"]
    ),
    .init(
        name: "a JWT requirement on the destination",
        entries: [
            #"{"Kind":"service-intentions","Name":"orders","JWT":{"Providers":[{"Name":"okta"}]},"Sources":[{"Name":"web","Action":"allow"}]}"#,
            #"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"api","Action":"allow"}]}"#,
        ],
        destinations: ["orders", "thumbnails"]
    ),
    .init(
        name: "peer and sameness-group sources",
        entries: [
            #"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Peer":"east","Action":"allow"},{"Name":"api","SamenessGroup":"shared","Action":"allow"},{"Name":"*","Action":"deny"},{"Name":"web","Action":"allow"}]}"#
        ],
        destinations: ["orders"]
    ),
    .init(
        name: "Enterprise namespaces: * namespace source, inherited namespace",
        entries: [
            #"{"Kind":"service-intentions","Name":"orders","Namespace":"sales","Partition":"emea","Sources":[{"Name":"*","Namespace":"*","Action":"deny"},{"Name":"web","Namespace":"frontend","Action":"allow"},{"Name":"billing","Action":"allow"}]}"#,
            #"{"Kind":"service-intentions","Name":"*","Namespace":"sales","Partition":"emea","Sources":[{"Name":"*","Namespace":"frontend","Action":"allow"},{"Name":"reporting","Action":"deny"}]}"#,
            // Another scope's entry: neither its list nor its match answer is about sales.
            #"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"deny"}]}"#,
        ],
        destinations: ["orders", "thumbnails"],
        scope: ConsulScope(partition: "emea", namespace: "sales")
    ),
]

/// The worked intentions for `orders` (as `workedIntentions` in IntentionEvaluatorTests), as entries.
let workedCaseEntries = [
    #"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"billing","Permissions":[{"Action":"deny","HTTP":{"PathPrefix":"/admin"}},{"Action":"allow","HTTP":{"PathPrefix":"/orders","Methods":["GET","HEAD"],"Header":[{"Name":"x-tenant","Present":true}]}}]},{"Name":"web","Action":"allow"},{"Name":"*","Action":"deny"}]}"#,
    #"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"reporting","Action":"allow"}]}"#,
]

@Suite("Intentions derived from the service-intentions entries")
struct IntentionsFromEntriesTests {
    static let requests = [
        AuthorizationRequest(method: "GET", path: "/orders/1", headers: [("x-tenant", "t1"), ("x-role", "ops")]),
        AuthorizationRequest(method: "GET", path: "/orders/1"),
        AuthorizationRequest(method: "GET", path: "/admin/users", headers: [("x-tenant", "t1")]),
        AuthorizationRequest(method: "POST", path: "/orders", headers: [("x-tenant", "t1")]),
        AuthorizationRequest(method: "GET", path: "/"),
    ]

    /// No identity, and five services in three namespaces of two partitions.
    static let callers: [SPIFFEID?] = {
        var callers: [SPIFFEID?] = [nil]
        for partition in ["default", "emea"] {
            for namespace in ["default", "frontend", "sales"] {
                for service in ["web", "billing", "api", "reporting", "intruder"] {
                    callers.append(SPIFFEID(trustDomain: "td.consul", partition: partition, namespace: namespace, datacenter: "dc1", service: service))
                }
            }
        }
        return callers
    }()

    /// The test server's list and match answers for the same entries: the derived intentions
    /// equal the matched ones, and every verdict of a grid of callers and requests is the same.
    @Test(arguments: intentionsConfigurations)
    func derivationEqualsTheMatchAnswer(_ configuration: IntentionsConfiguration) async throws {
        var options = ConsulTestServer.Options()
        options.enterprise = !configuration.scope.isDefault
        let consul = try await ConsulTestServer(options: options)
        let client = try ConsulClient(
            configuration: try ConsulConfiguration(environment: ["CONSUL_HTTP_ADDR": consul.baseURL]),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "consul")
        )
        try await withTeardown {
            for entry in configuration.entries { try consul.setConfigEntry(entry) }
            let scopeQuery = configuration.scope.isDefault ? [] : [("ns", configuration.scope.namespace), ("partition", configuration.scope.partition)]
            let (entries, _) = try await client.get([ServiceIntentionsEntry].self, "/v1/config/service-intentions", query: scopeQuery)
            let (matches, _) = try await client.get(
                IntentionMatches.self, "/v1/connect/intentions/match", query: [("by", "destination")] + configuration.destinations.map { ("name", $0) } + scopeQuery
            )
            let derived = IntentionsFromEntries(entries: entries, scope: configuration.scope)
            #expect(configuration.destinations.contains { !(matches[$0] ?? []).isEmpty }, "a comparison of empty lists proves nothing")
            for destination in configuration.destinations {
                let fromList = try derived.rules(for: destination).get()
                let fromMatch = try (matches[destination] ?? []).map { try IntentionRule($0, service: destination) }
                #expect(fromList.map(Self.normalized) == fromMatch.map(Self.normalized), "\(destination)")
                for policy in IntentionAction.allCases {
                    let (list, match) = (IntentionEvaluator(rules: fromList, defaultPolicy: policy), IntentionEvaluator(rules: fromMatch, defaultPolicy: policy))
                    for caller in Self.callers {
                        for request in Self.requests {
                            #expect(
                                list.isAllowed(caller: caller, request: request) == match.isAllowed(caller: caller, request: request),
                                "\(destination) \(policy) \(caller?.description ?? "no identity") \(request.method) \(request.path)"
                            )
                        }
                    }
                }
            }
        } teardown: {
            try? await client.shutdown()
            await consul.shutdown()
        }
    }

    /// The worked cases' rows (as in IntentionEvaluatorTests), row R included, from the entries alone.
    @Test(
        arguments: [
            ("A", "web", AuthorizationRequest(method: "POST", path: "/anything"), true, true),
            ("B", "billing", AuthorizationRequest(method: "GET", path: "/orders/1", headers: [("x-tenant", "t1")]), true, true),
            ("C", "billing", AuthorizationRequest(method: "GET", path: "/orders/1"), false, true),
            ("D", "billing", AuthorizationRequest(method: "GET", path: "/admin/users", headers: [("x-tenant", "t1")]), false, false),
            ("E", "billing", AuthorizationRequest(method: "POST", path: "/orders", headers: [("x-tenant", "t1")]), false, true),
            ("F", "api", AuthorizationRequest(method: "GET", path: "/"), false, false),
            ("R", "reporting", AuthorizationRequest(method: "GET", path: "/"), true, false),
            ("N", nil, AuthorizationRequest(method: "GET", path: "/"), false, true),
        ] as [(String, String?, AuthorizationRequest, Bool, Bool)])
    func workedCasesHoldForTheDerivedIntentions(_ row: String, caller: String?, request: AuthorizationRequest, underDeny: Bool, underAllow: Bool) throws {
        let entries = try workedCaseEntries.map { try JSONDecoder().decode(ServiceIntentionsEntry.self, from: Data($0.utf8)) }
        let rules = try IntentionsFromEntries(entries: entries, scope: .default).rules(for: "orders").get()
        #expect(rules.map(\.sourceName) == ["billing", "web", "*", "reporting"])
        #expect(rules.map(\.precedence) == [9, 9, 8, 6])
        let id = caller.map { SPIFFEID(trustDomain: "td.consul", datacenter: "dc1", service: $0) }
        #expect(IntentionEvaluator(rules: rules, defaultPolicy: .deny).isAllowed(caller: id, request: request) == underDeny, "row \(row), D = deny")
        #expect(IntentionEvaluator(rules: rules, defaultPolicy: .allow).isAllowed(caller: id, request: request) == underAllow, "row \(row), D = allow")
    }

    @Test(arguments: [
        ("default", "web", "default", "orders", 9), ("default", "*", "default", "orders", 8), ("*", "*", "default", "orders", 7),
        ("default", "web", "default", "*", 6), ("default", "*", "default", "*", 5), ("*", "*", "default", "*", 4),
        ("default", "web", "*", "*", 3), ("default", "*", "*", "*", 2), ("*", "*", "*", "*", 1),
    ])
    func precedenceWithoutConsulsValueFollowsTheTable(_ sourceNamespace: String, _ source: String, _ destinationNamespace: String, _ destination: String, _ expected: Int) {
        let computed = IntentionsFromEntries.precedence(
            sourceNamespace: sourceNamespace, sourceName: source, destinationNamespace: destinationNamespace, destinationName: destination
        )
        #expect(computed == expected)
    }

    /// Empty partition, namespace and type are Consul's defaults: the two answers spell them differently.
    static func normalized(_ rule: IntentionRule) -> IntentionRule {
        var rule = rule
        if rule.sourcePartition.isEmpty { rule.sourcePartition = "default" }
        if rule.sourceNamespace.isEmpty { rule.sourceNamespace = "default" }
        if rule.sourceType.isEmpty { rule.sourceType = "consul" }
        return rule
    }
}

@Suite struct IntentionsFromEntriesByteNamesTests {
    /// Consul compares destination names byte for byte: the entry of `café` (NFC) is not its
    /// canonically equal twin's (NFD).
    @Test func destinationsThatDifferOnlyInNormalizationKeepTheirOwnSources() throws {
        let json =
            #"[{"Kind":"service-intentions","Name":"caf\u00e9","Sources":[{"Name":"web","Action":"allow"}]},{"Kind":"service-intentions","Name":"cafe\u0301","Sources":[{"Name":"api","Action":"deny"}]}]"#
        let entries = try JSONDecoder().decode([ServiceIntentionsEntry].self, from: Data(json.utf8))
        let intentions = IntentionsFromEntries(entries: entries, scope: .default)
        #expect(try intentions.rules(for: "caf\u{E9}").get().map(\.sourceName) == ["web"])
        #expect(try intentions.rules(for: "cafe\u{301}").get().map(\.sourceName) == ["api"])
    }
}

@Suite struct IntentionsFromEntriesInvalidTests {
    /// A source Consul's validation would refuse makes its destination's intentions a failure
    /// that names it: never a list without it. An entry for `*` covers every service.
    @Test(arguments: invalidPermissions)
    func anInvalidSourceRefusesTheIntentionsOfItsDestinationsOnly(_ invalid: InvalidPermissionCase) throws {
        func entry(_ name: String, _ sources: String) -> String { #"{"Kind":"service-intentions","Name":"\#(name)","Sources":[\#(sources)]}"# }
        let garbage = #"{"Name":"billing","Permissions":[{"Action":"allow","HTTP":{"PathPrefix":"/orders"}},\#(invalid.permission)]}"#
        let expected = "the intention from billing to orders is invalid: \(invalid.message)"
        func derived(_ entries: [String], scope: ConsulScope = .default) throws -> IntentionsFromEntries {
            IntentionsFromEntries(entries: try entries.map { try JSONDecoder().decode(ServiceIntentionsEntry.self, from: Data($0.utf8)) }, scope: scope)
        }

        let own = try derived([entry("orders", #"{"Name":"web","Action":"allow"},"# + garbage), entry("thumbnails", #"{"Name":"web","Action":"allow"}"#)])
        let error = #expect(throws: InvalidIntention.self) { try own.rules(for: "orders").get() }
        #expect(error?.description == expected)
        #expect(try own.rules(for: "thumbnails").get().map(\.sourceName) == ["web"])

        let wildcard = try derived([entry("*", garbage), entry("thumbnails", #"{"Name":"web","Action":"allow"}"#)])
        for service in ["orders", "thumbnails", "*"] {
            let error = #expect(throws: InvalidIntention.self, "\(service)") { try wildcard.rules(for: service).get() }
            #expect(error?.description == "the intention from billing to * is invalid: \(invalid.message)")
        }

        // Enterprise: the source inherits the destination's namespace and partition, and both are named.
        let scope = ConsulScope(partition: "emea", namespace: "sales")
        let scoped = try derived([entry("orders", garbage).replacingOccurrences(of: #""Name":"orders""#, with: #""Name":"orders","Namespace":"sales","Partition":"emea""#)], scope: scope)
        let scopedError = #expect(throws: InvalidIntention.self) { try scoped.rules(for: "orders").get() }
        #expect(scopedError?.source == "emea/sales/billing" && scopedError?.destination == "emea/sales/orders")
    }
}

import ConsulAPI
import Foundation
import Testing

/// The example answers in `../shared/testdata/consul` (read in place, never copied).
enum ConsulTestData {
    static var root: URL {
        if let shared = ProcessInfo.processInfo.environment["LAMBDA_GATEWAY_SHARED_DIR"] {
            return URL(fileURLWithPath: shared).appendingPathComponent("testdata/consul")
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("shared/testdata/consul")
    }

    static func decode<T: Decodable>(_ type: T.Type, _ file: String) throws -> T {
        let url = root.appendingPathComponent(file)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: url.path])
        }
        return try JSONDecoder().decode(T.self, from: data)
    }
}

@Suite("Consul answers decode with Consul's field names")
struct ModelDecodingTests {
    @Test func caRoots() throws {
        let roots = try ConsulTestData.decode(CARoots.self, "ca-roots.json")
        #expect(roots.TrustDomain == "11111111-2222-3333-4444-555555555555.consul")
        #expect(roots.ActiveRootID == "5b:1e:9c:4d:7a:02:f3:61:88:c0:2e:59:b7:14:a6:0d:93:3f:e8:71")
        try #require(roots.Roots.count == 1)
        #expect(roots.Roots[0].Active && roots.Roots[0].RootCert.hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(roots.Roots[0].IntermediateCerts.isEmpty)  // null decodes as []
        #expect(roots.Roots[0].ModifyIndex == 8)
    }

    @Test func leaf() throws {
        let leaf = try ConsulTestData.decode(LeafCertificate.self, "leaf-orders.json")
        #expect(leaf.Service == "orders")
        #expect(leaf.ServiceURI == "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/orders")
        #expect(leaf.validAfter == ISO8601DateFormatter().date(from: "2026-01-10T09:00:00Z"))
        #expect(leaf.validBefore == ISO8601DateFormatter().date(from: "2026-01-13T09:00:00Z"))
        #expect(leaf.PrivateKeyPEM.contains("EC PRIVATE KEY"))
        #expect(leaf.ModifyIndex == 150)
    }

    @Test func gatewayServices() throws {
        let services = try ConsulTestData.decode([GatewayService].self, "gateway-services.json")
        #expect(services.map(\.Service.Name) == ["orders", "thumbnails"])
        #expect(services.allSatisfy { $0.GatewayKind == "terminating-gateway" && $0.Gateway.Name == "lambda-gateway" })
        #expect(services[0].ServiceKind == "" && services[0].Service.Namespace == "")
    }

    @Test func healthService() throws {
        let entries = try ConsulTestData.decode([HealthServiceEntry].self, "health-service-orders.json")
        try #require(entries.count == 1)
        #expect(entries[0].Node.Node == "lambdas")
        #expect(entries[0].Node.Meta["external-node"] == "true")
        #expect(entries[0].Service.Tags == ["managed-by-lambda-registrator"])
        #expect(entries[0].Service.Port == 0)
    }

    @Test func intentionsMatch() throws {
        let matches = try ConsulTestData.decode(IntentionMatches.self, "intentions-match-orders.json")
        let orders = try #require(matches["orders"])
        #expect(orders.map(\.SourceName) == ["billing", "web"])
        #expect(orders[0].Action == "")
        #expect(orders[0].Permissions.map(\.Action) == ["deny", "allow"])
        let allow = try #require(orders[0].Permissions[1].HTTP)
        #expect(allow.PathPrefix == "/orders" && allow.Methods == ["GET", "HEAD"])
        #expect(allow.Header.first?.Name == "x-tenant" && allow.Header.first?.Present == true)
        #expect(orders[1].Action == "allow" && orders[1].Permissions.isEmpty && orders[1].Precedence == 9)
    }

    @Test func serviceDefaultsWithEnvoyExtension() throws {
        let entry = try ConsulTestData.decode(ServiceDefaults.self, "service-defaults-orders.json")
        #expect(entry.Name == "orders" && entry.protocolName == "http")
        let lambda = try #require(entry.EnvoyExtensions.first)
        #expect(lambda.Name == "builtin/aws/lambda" && !lambda.Required)
        #expect(lambda.Arguments?.value(forCaseInsensitiveKey: "arn")?.stringValue == "arn:aws:lambda:us-east-1:123456789012:function:orders")
        #expect(lambda.Arguments?.value(forCaseInsensitiveKey: "payloadpassthrough") == .bool(false))
        #expect(lambda.Arguments?.value(forCaseInsensitiveKey: "InvocationMode") == .string("synchronous"))
    }

    @Test func serviceDefaultsWithLegacyMeta() throws {
        let entry = try ConsulTestData.decode(ServiceDefaults.self, "service-defaults-thumbnails.json")
        #expect(entry.EnvoyExtensions.isEmpty)
        #expect(entry.Meta["serverless.consul.hashicorp.com/v1alpha1/lambda/enabled"] == "true")
        #expect(entry.Meta["serverless.consul.hashicorp.com/v1alpha1/lambda/invocation-mode"] == "asynchronous")
    }

    @Test func serviceResolver() throws {
        let resolver = try ConsulTestData.decode(ServiceResolver.self, "service-resolver-orders.json")
        #expect(resolver.Name == "orders")
        #expect(resolver.RequestTimeout == .seconds(30))
        #expect(resolver.Subsets.isEmpty)
    }

    @Test func resolverTimeoutFormsAndErrors() throws {
        func decode(_ json: String) throws -> ServiceResolver { try JSONDecoder().decode(ServiceResolver.self, from: Data(json.utf8)) }
        #expect(try decode(#"{"Name":"a","RequestTimeout":1500000000}"#).RequestTimeout == .milliseconds(1500))
        #expect(try decode(#"{"Name":"a","RequestTimeout":"1m30s","Subsets":{"v1":{"Filter":"Service.Meta.v == 1"}}}"#).RequestTimeout == .seconds(90))
        #expect(try decode(#"{"Name":"a","Subsets":null}"#).RequestTimeout == .zero)
        #expect(throws: DecodingError.self) { try decode(#"{"Name":"a","RequestTimeout":"soon"}"#) }
    }

    @Test func meshProxyDefaultsAndAgentSelf() throws {
        let mesh = try JSONDecoder().decode(
            MeshConfig.self,
            from: Data(
                #"{"Kind":"mesh","TLS":{"Incoming":{"TLSMinVersion":"TLSv1_2","CipherSuites":["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]}},"HTTP":{"SanitizeXForwardedClientCert":true},"Unknown":1}"#
                    .utf8))
        #expect(mesh.TLS?.Incoming?.TLSMinVersion == "TLSv1_2" && mesh.TLS?.Incoming?.TLSMaxVersion == "")
        #expect(mesh.HTTP?.SanitizeXForwardedClientCert == true)
        let defaults = try JSONDecoder().decode(ProxyDefaults.self, from: Data(#"{"Kind":"proxy-defaults","Name":"global","Config":{"protocol":"http"},"EnvoyExtensions":null}"#.utf8))
        #expect(defaults.protocol == "http" && defaults.EnvoyExtensions.isEmpty)
        let agent = try JSONDecoder().decode(AgentSelf.self, from: Data(#"{"Config":{"Datacenter":"dc1","NodeName":"node-a","Version":"1.21.0"},"DebugConfig":{"DefaultIntentionPolicy":""}}"#.utf8))
        #expect(agent.Config?.Datacenter == "dc1" && agent.DebugConfig?.DefaultIntentionPolicy == "")
    }

    @Test func catalogServicesList() throws {
        let services = try JSONDecoder().decode(CatalogServices.self, from: Data(#"{"consul": [], "orders": ["managed-by-lambda-registrator"], "web": []}"#.utf8))
        #expect(services.keys.sorted() == ["consul", "orders", "web"])
    }

    @Test func garbageIsAnError() {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(CARoots.self, from: Data("<html>".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([GatewayService].self, from: Data(#"{"Gateway":1}"#.utf8)) }
    }
}

@Suite("Go durations")
struct GoDurationTests {
    @Test(arguments: [
        ("30s", Duration.seconds(30)), ("1m30s", .seconds(90)), ("1h0m0s", .seconds(3600)), ("1.5s", .milliseconds(1500)),
        ("500ms", .milliseconds(500)), ("250µs", .microseconds(250)), ("250μs", .microseconds(250)), ("250us", .microseconds(250)),
        ("10ns", .nanoseconds(10)), ("0s", .zero), ("0", .zero), ("", .zero), ("-2m", .seconds(-120)), (".5s", .milliseconds(500)),
    ])
    func parses(text: String, expected: Duration) throws {
        #expect(try GoDuration.parse(text) == expected)
    }

    @Test(arguments: ["5", "s", "1.s5", "1d", "1m30", "--1s", "1 s", "abc"])
    func rejects(text: String) {
        #expect(throws: GoDuration.ParseError.self) { try GoDuration.parse(text) }
    }

    /// Totals between Int64.max nanoseconds and the old 9.3e18 bound trapped: a service-resolver
    /// RequestTimeout of `2570000h` stopped the gateway (seen while writing FuzzGoDuration; its
    /// runs had not reached it).
    @Test(arguments: ["2562048h", "2570000h", "9223372036854775808ns", "153722868m", "-2570000h"])
    func rejectsDurationsBeyondInt64Nanoseconds(text: String) {
        #expect(throws: GoDuration.ParseError.self) { try GoDuration.parse(text) }
    }

    @Test func acceptsTheLongestWholeHoursGoAccepts() throws {
        #expect(try GoDuration.parse("2562047h") == .nanoseconds(Int64(2_562_047) * 3_600_000_000_000))
    }

    @Test func waitIsWrittenInMilliseconds() {
        #expect(GoDuration.milliseconds(.seconds(300)) == "300000ms")
    }
}

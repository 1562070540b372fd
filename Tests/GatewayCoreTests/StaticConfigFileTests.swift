import Foundation
import GatewayCore
import LambdaPayload
import MeshIdentity
import TestSupport
import Testing

/// The static configuration format: a valid file becomes the served snapshot; every kind of
/// mistake is refused with the file, line, key and what is wrong.
@Suite("static configuration file")
struct StaticConfigFileTests {
    static let trustDomain = "33333333-4444-5555-6666-777777777777.consul"

    /// Certificates on disk: the mesh CA, leaves for orders and billing, an expired leaf, a foreign-key pair.
    final class Fixture: Sendable {
        let directory: TemporaryDirectory

        init() throws {
            directory = try TemporaryDirectory()
            let ca = try TestCA(commonName: "mesh")
            func spiffe(_ service: String) -> [String] { ["spiffe://\(StaticConfigFileTests.trustDomain)/ns/default/dc/dc1/svc/\(service)"] }
            let orders = try ca.issueLeaf(commonName: "orders", dnsNames: [], ipAddresses: [], uris: spiffe("orders"))
            let billing = try ca.issueLeaf(commonName: "billing", dnsNames: [], ipAddresses: [], uris: spiffe("billing"))
            let expired = try ca.issueLeaf(
                commonName: "orders", dnsNames: [], ipAddresses: [], uris: spiffe("orders"),
                notValidBefore: Date().addingTimeInterval(-7200), notValidAfter: Date().addingTimeInterval(-3600)
            )
            _ = try directory.file("ca.pem", contents: try ca.pem)
            _ = try directory.file("orders.pem", contents: try orders.certificatePEM)
            _ = try directory.file("orders-key.pem", contents: orders.keyPEM)
            _ = try directory.file("billing.pem", contents: try billing.certificatePEM)
            _ = try directory.file("billing-key.pem", contents: billing.keyPEM)
            _ = try directory.file("expired.pem", contents: try expired.certificatePEM)
            _ = try directory.file("expired-key.pem", contents: expired.keyPEM)
            _ = try directory.file("not-a-cert.pem", contents: "hello\n")
        }

        func parse(_ yaml: String) throws(StaticConfigError) -> StaticConfig {
            try StaticConfigFile.parse(yaml, file: "gateway.yaml", directory: directory.url)
        }
    }

    static let valid = """
        trustDomain: \(trustDomain)
        datacenter: dc1
        caFile: ca.pem
        defaultIntentionPolicy: deny
        services:
          - name: orders
            arn: arn:aws:lambda:us-east-1:123456789012:function:orders
            certFile: orders.pem
            keyFile: orders-key.pem
            subsets: [v2]
            requestTimeout: 3s
            invokeMode: RESPONSE_STREAM
            intentions:
              - source: web
                action: allow
              - source: admin
                permissions:
                  - action: allow
                    http: {pathPrefix: /admin, methods: [get]}
          - name: billing
            arn: arn:aws:lambda:eu-west-1:123456789012:function:billing:live
            payloadFormat: apigateway-v2
            invocationMode: asynchronous
            certFile: billing.pem
            keyFile: billing-key.pem

        """

    @Test func aValidFileBecomesTheServedSnapshot() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let snapshot = try fixture.parse(Self.valid).snapshot(version: 1, now: Date())
        #expect(snapshot.services.keys.sorted() == ["billing", "orders"])
        #expect(snapshot.trustDomain == Self.trustDomain && snapshot.datacenter == "dc1" && snapshot.rootPEMs.count == 1)
        let orders = try #require(snapshot.service(forSNI: "orders.default.dc1.internal.\(Self.trustDomain)"))
        #expect(orders.name == "orders" && orders.requestTimeout == .seconds(3) && orders.lambda.invokeMode == .responseStream)
        #expect(snapshot.service(forSNI: "v2.orders.default.dc1.internal.\(Self.trustDomain)")?.name == "orders")
        #expect(orders.leaf.serviceURI == "spiffe://\(Self.trustDomain)/ns/default/dc/dc1/svc/orders")
        let billing = try #require(snapshot.services["billing"])
        #expect(billing.lambda.payloadFormat == .apiGatewayV2 && billing.lambda.invocationType == .event && billing.lambda.function.region == "eu-west-1")
        #expect(billing.lambda.invokeMode == .buffered)

        let evaluator = orders.authorization(defaultPolicy: snapshot.defaultIntentionPolicy)
        func caller(_ name: String) -> SPIFFEID { SPIFFEID(trustDomain: Self.trustDomain, datacenter: "dc1", service: name) }
        #expect(evaluator.isAllowed(caller: caller("web"), request: AuthorizationRequest(method: "POST", path: "/x")))
        #expect(evaluator.isAllowed(caller: caller("admin"), request: AuthorizationRequest(method: "GET", path: "/admin/users")))
        #expect(!evaluator.isAllowed(caller: caller("admin"), request: AuthorizationRequest(method: "POST", path: "/admin/users")))
        #expect(!evaluator.isAllowed(caller: caller("intruder"), request: AuthorizationRequest(method: "GET", path: "/")))
    }

    /// Files are read by their content: a DER CA named `.pem`, a DER leaf named `.crt`, a PEM key
    /// named `.key` and a DER one; the snapshot keeps them as PEM.
    @Test func keyAndCertificateFilesAreReadByTheirContentWhateverTheirNames() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let ca = try TestCA(commonName: "mesh")
        func spiffe(_ service: String) -> [String] { ["spiffe://\(Self.trustDomain)/ns/default/dc/dc1/svc/\(service)"] }
        let orders = try ca.issueLeaf(commonName: "orders", dnsNames: [], ipAddresses: [], uris: spiffe("orders"))
        let billing = try ca.issueLeaf(commonName: "billing", dnsNames: [], ipAddresses: [], uris: spiffe("billing"))
        _ = try fixture.directory.file("der-ca.pem", bytes: try ca.nioCertificate.toDERBytes())
        _ = try fixture.directory.file("orders.crt", bytes: try orders.certificateDER)
        _ = try fixture.directory.file("orders.key", contents: orders.keyPEM)
        _ = try fixture.directory.file("billing.crt", contents: try billing.certificatePEM)
        _ = try fixture.directory.file("billing.key", bytes: billing.keyDER)
        let yaml = Self.valid
            .replacingOccurrences(of: "caFile: ca.pem", with: "caFile: der-ca.pem")
            .replacingOccurrences(of: "orders.pem", with: "orders.crt").replacingOccurrences(of: "orders-key.pem", with: "orders.key")
            .replacingOccurrences(of: "billing.pem", with: "billing.crt").replacingOccurrences(of: "billing-key.pem", with: "billing.key")
        let snapshot = try fixture.parse(yaml).snapshot(version: 1, now: Date())
        #expect(snapshot.services.keys.sorted() == ["billing", "orders"])
        #expect(snapshot.rootPEMs == [try ca.pem.trimmingCharacters(in: .newlines) + "\n"])
        #expect(snapshot.services["orders"]?.leaf.certificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----") == true)
        #expect(snapshot.services["billing"]?.leaf.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----") == true)
    }

    @Test func theMeshListenersTLSCanBeSet() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        #expect(try fixture.parse(Self.valid).snapshot(version: 1, now: Date()).incomingTLS == IncomingTLS())
        let yaml = Self.valid.replacingOccurrences(
            of: "defaultIntentionPolicy: deny\n",
            with: "defaultIntentionPolicy: deny\ntls:\n  minVersion: TLSv1_2\n  maxVersion: TLSv1_2\n  cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
        )
        let tls = try fixture.parse(yaml).snapshot(version: 1, now: Date()).incomingTLS
        #expect(tls.minimumVersion == .tls12 && tls.maximumVersion == .tls12 && tls.cipherSuites == ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"])
    }

    @Test func anAccessLogBlockIsConsulsAccessLogsAndItsFormatIsChecked() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        #expect(try fixture.parse(Self.valid).snapshot(version: 1, now: Date()).accessLogs == nil)
        func withAccessLogs(_ block: String) -> String {
            Self.valid.replacingOccurrences(of: "defaultIntentionPolicy: deny\n", with: "defaultIntentionPolicy: deny\naccessLogs:\n" + block)
        }
        let file = try fixture.parse(withAccessLogs("  type: file\n  path: logs/access.log\n  textFormat: \"%RESPONSE_CODE% %DOWNSTREAM_PEER_URI_SAN%\"\n"))
        let config = try #require(file.snapshot(version: 1, now: Date()).accessLogs)
        #expect(config.Enabled && !config.DisableListenerLogs && config.Type == "file" && config.TextFormat == "%RESPONSE_CODE% %DOWNSTREAM_PEER_URI_SAN%")
        #expect(config.Path == fixture.directory.url.appendingPathComponent("logs/access.log").path)
        #expect(try fixture.parse(withAccessLogs("  enabled: false\n")).accessLogs?.Enabled == false)

        func problem(_ block: String) -> String {
            do {
                _ = try fixture.parse(withAccessLogs(block))
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(problem("  textFormat: \"%FOO%\"\n").contains("accessLogs.textFormat: unknown access-log operator %FOO%"), "\(problem("  textFormat: \"%FOO%\"\n"))")
        #expect(problem("  textFormat: a\n  jsonFormat: \"{}\"\n").contains("jsonFormat and textFormat cannot both be set"))
        #expect(problem("  type: syslog\n").contains("accessLogs.type: must be stdout, stderr or file"))
        #expect(problem("  type: file\n").contains("accessLogs.path: is required with type: file"))
        #expect(problem("  colour: red\n").contains("accessLogs.colour: unknown key"))
    }

    /// (what is changed, expected text of the error).
    static let mistakes: [(String, String, String)] = [
        ("datacenter: dc1\n", "", "gateway.yaml:1:1: datacenter: is required"),
        ("caFile: ca.pem", "cafile: ca.pem", "gateway.yaml:3:1: cafile: unknown key (did you mean caFile?)"),
        ("function:orders\n", "orders\n", "gateway.yaml:7:10: services[0].arn: invalid function ARN"),
        ("payloadFormat: apigateway-v2", "payloadFormat: soap", "services[1].payloadFormat: unknown format \"soap\""),
        ("invocationMode: asynchronous", "invocationMode: later", "services[1].invocationMode: must be synchronous or asynchronous"),
        ("certFile: orders.pem", "certFile: missing.pem", "missing.pem does not exist"),
        (
            "certFile: orders.pem\n    keyFile: orders-key.pem", "certFile: billing.pem\n    keyFile: billing-key.pem",
            "gateway.yaml: services[0].certFile: the certificate's SPIFFE ID is spiffe://\(trustDomain)/ns/default/dc/dc1/svc/billing, expected"
        ),
        ("keyFile: orders-key.pem", "keyFile: billing-key.pem", "gateway.yaml: services[0].keyFile: the key does not belong to the certificate"),
        ("certFile: orders.pem\n    keyFile: orders-key.pem", "certFile: expired.pem\n    keyFile: expired-key.pem", "services[0].certFile: the certificate is not valid now"),
        ("caFile: ca.pem", "caFile: not-a-cert.pem", "not-a-cert.pem is neither PEM (no -----BEGIN line) nor DER"),
        ("        action: allow\n", "", "services[0].intentions[0]: needs an action (allow or deny) or permissions"),
        ("action: allow\n      - source: admin", "action: maybe\n      - source: admin", "services[0].intentions[0].action: must be allow or deny"),
        ("- name: billing", "- name: orders", "services[1].name: \"orders\" is listed twice"),
        ("invokeMode: RESPONSE_STREAM", "invokeMode: STREAMING", "services[0].invokeMode: must be BUFFERED or RESPONSE_STREAM, not \"STREAMING\""),
        ("invocationMode: asynchronous", "invocationMode: asynchronous\n    invokeMode: RESPONSE_STREAM", "services[1].invokeMode: RESPONSE_STREAM cannot be used with invocationMode asynchronous"),
        ("requestTimeout: 3s", "requestTimeout: soon", "services[0].requestTimeout: \"soon\" is not a duration"),
        ("subsets: [v2]", "subsets: {a: b}", "services[0].subsets: must be a list"),
        ("defaultIntentionPolicy: deny", "defaultIntentionPolicy: maybe", "defaultIntentionPolicy: must be allow or deny"),
        ("services:\n", "services: [\n", "gateway.yaml: not valid YAML"),
        ("defaultIntentionPolicy: deny\n", "defaultIntentionPolicy: deny\ntls: {minVersion: TLSv1_0}\n", "gateway.yaml:5:6: tls: TLSMinVersion TLSv1_0 is below TLS 1.2"),
        (
            "defaultIntentionPolicy: deny\n", "defaultIntentionPolicy: deny\ntls: {cipherSuites: [TLS_RSA_WITH_RC4_128_SHA]}\n",
            "tls: CipherSuites: TLS_RSA_WITH_RC4_128_SHA is not a suite Consul knows"
        ),
        ("defaultIntentionPolicy: deny\n", "defaultIntentionPolicy: deny\ntls: {minVersion: TLSv1_3, maxVersion: TLSv1_2}\n", "tls: TLSMaxVersion TLSv1_2 is below TLSMinVersion TLSv1_3"),
        ("defaultIntentionPolicy: deny\n", "defaultIntentionPolicy: deny\ntls: {minimum: TLSv1_3}\n", "tls.minimum: unknown key"),
        (
            "{pathPrefix: /admin,", "{pathPrefix: /admin, pathExact: /admin,",
            "gateway.yaml:19:19: services[0].intentions[1].permissions[0].http: use at most one of pathExact, pathPrefix and pathRegex"
        ),
        // Empty, each would have meant any path.
        ("{pathPrefix: /admin,", "{pathPrefix: '',", "gateway.yaml:19:32: services[0].intentions[1].permissions[0].http.pathPrefix: must not be empty (leave it out to match any path)"),
        ("{pathPrefix: /admin,", "{pathExact: \"\",", "services[0].intentions[1].permissions[0].http.pathExact: must not be empty"),
        ("{pathPrefix: /admin,", "{pathRegex: '',", "services[0].intentions[1].permissions[0].http.pathRegex: must not be empty"),
        ("{pathPrefix: /admin,", "{header: [{name: x}],", "services[0].intentions[1].permissions[0].http.header: unknown key"),
    ]

    /// Each path key becomes its kind of match; none matches any path.
    @Test(
        arguments: [
            ("pathExact: /admin,", PathMatch.exact("/admin")), ("pathPrefix: /admin,", .prefix("/admin")), ("pathRegex: '/admin/.*',", .regex("/admin/.*")), ("", nil),
        ] as [(String, PathMatch?)])
    func eachPathKeyIsItsKindOfMatch(_ key: String, _ expected: PathMatch?) throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let yaml = Self.valid.replacingOccurrences(of: "{pathPrefix: /admin,", with: "{\(key)")
        let snapshot = try fixture.parse(yaml).snapshot(version: 1, now: Date())
        let admin = try #require(snapshot.services["orders"]?.intentions.first { $0.sourceName == "admin" })
        #expect(admin.permissions.map(\.http) == [HTTPRule(path: expected, methods: ["GET"])])
    }

    @Test(arguments: mistakes.indices)
    func eachMistakeIsNamed(_ index: Int) throws {
        let (original, replacement, expected) = Self.mistakes[index]
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        #expect(Self.valid.contains(original), "the mutation must apply")
        let broken = Self.valid.replacingOccurrences(of: original, with: replacement)
        do {
            _ = try fixture.parse(broken).snapshot(version: 1, now: Date())
            Issue.record("accepted a file with a mistake: \(expected)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func anUnreadableFileSaysSo() {
        #expect(throws: StaticConfigError.self) { try StaticConfigFile.load(path: "/nonexistent/gateway.yaml") }
    }
}

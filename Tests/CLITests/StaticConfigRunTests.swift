import Foundation
import TestSupport
import Testing

/// `run --config FILE` (no Consul) and the direct `--upstream` listeners, as processes.
@Suite("run --config and --upstream", .serialized)
struct StaticConfigRunTests {
    static let trustDomain = "22222222-3333-4444-5555-666666666666.consul"
    static let sni = "orders.default.dc1.internal.\(trustDomain)"

    /// A mesh CA, a leaf for `orders`, callers `web` (allowed) and `intruder`, and the YAML file.
    struct Files {
        let directory: TemporaryDirectory
        let config: String
        let webCertificate: String
        let webKey: String
        let intruderCertificate: String
        let intruderKey: String
        let lambdaCAFile: String
    }

    static func files(lambdaCA: TestCA) throws -> Files {
        let directory = try TemporaryDirectory()
        let mesh = try TestCA(commonName: "mesh CA")
        func spiffe(_ service: String) -> String { "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/\(service)" }
        let orders = try mesh.issueLeaf(commonName: "orders", dnsNames: [], ipAddresses: [], uris: [spiffe("orders")])
        let web = try mesh.issueLeaf(commonName: "web", dnsNames: [], ipAddresses: [], uris: [spiffe("web")])
        let intruder = try mesh.issueLeaf(commonName: "intruder", dnsNames: [], ipAddresses: [], uris: [spiffe("intruder")])
        _ = try directory.file("mesh-ca.pem", contents: try mesh.pem)
        _ = try directory.file("orders.pem", contents: try orders.certificatePEM)
        _ = try directory.file("orders-key.pem", contents: orders.keyPEM)
        let config = try directory.file(
            "gateway.yaml",
            contents: """
                trustDomain: \(trustDomain)
                datacenter: dc1
                caFile: mesh-ca.pem
                services:
                  - name: orders
                    arn: arn:aws:lambda:us-east-1:123456789012:function:orders
                    certFile: orders.pem
                    keyFile: orders-key.pem
                    intentions:
                      - source: web
                        action: allow
                """)
        return Files(
            directory: directory, config: config,
            webCertificate: try directory.file("web.pem", contents: try web.certificatePEM), webKey: try directory.file("web-key.pem", contents: web.keyPEM),
            intruderCertificate: try directory.file("intruder.pem", contents: try intruder.certificatePEM), intruderKey: try directory.file("intruder-key.pem", contents: intruder.keyPEM),
            lambdaCAFile: try lambdaCA.writePEM(to: directory.url)
        )
    }

    static func meshCall(port: String, certificate: String, key: String, path: String = "/hello") async throws -> ChildProcess.Output {
        try await ChildProcess.run([
            "curl", "-sS", "-k", "--cert", certificate, "--key", key, "--resolve", "\(sni):\(port):127.0.0.1", "-w", "\n%{http_code}", "https://\(sni):\(port)\(path)",
        ])
    }

    /// The port in a line like `… on 127.0.0.1:40123 (plaintext, no intentions)`.
    static func port(in line: String) throws -> String {
        let after = try #require(line.range(of: "127.0.0.1:")).upperBound
        return String(line[after...].prefix { $0.isNumber })
    }

    @Test func servesAStaticFileThroughMeshAndDirectListeners() async throws {
        let lambdaCA = try TestCA()
        let lambda = try await TestHTTPServer(tls: try lambdaCA.issueLeaf().serverTLSConfiguration()) { request in
            let xfcc = request.bodyText.contains("x-forwarded-client-cert") ? "with-xfcc" : "no-xfcc"
            let proto = request.bodyText.contains(#""x-forwarded-proto":"https""#) ? "https" : "http"
            return ScriptedResponse(json: #"{"statusCode":200,"body":"orders \#(xfcc) \#(proto)"}"#)
        }
        let files = try Self.files(lambdaCA: lambdaCA)
        let gateway = try RunningProcess(
            [
                CLI.executable.path, "run", "--config", files.config, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--upstream", "orders=127.0.0.1:0", "--lambda-endpoint", lambda.baseURL, "--lambda-ca-file", files.lambdaCAFile,
            ],
            environment: GatewayProcess.environment
        )
        try await withTeardown {
            let meshPort = try Self.port(in: try await gateway.waitForLine(containing: "listening on"))
            let directPort = try Self.port(in: try await gateway.waitForLine(containing: "direct listener for orders"))

            let allowed = try await Self.meshCall(port: meshPort, certificate: files.webCertificate, key: files.webKey)
            #expect(allowed.stdout == "orders with-xfcc https\n200", "\(allowed.stdout) \(allowed.stderr)")
            let denied = try await Self.meshCall(port: meshPort, certificate: files.intruderCertificate, key: files.intruderKey)
            #expect(denied.stdout == "RBAC: access denied\n403")

            // The direct listener: plaintext, no client certificate, no intentions, same codec and signing.
            let direct = try await ChildProcess.run(["curl", "-sS", "-w", "\n%{http_code}", "http://127.0.0.1:\(directPort)/hello"])
            #expect(direct.stdout == "orders no-xfcc http\n200", "\(direct.stdout) \(direct.stderr)")
            let h2c = try await ChildProcess.run(["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_code} %{http_version}", "http://127.0.0.1:\(directPort)/hello"])
            #expect(h2c.stdout == "orders no-xfcc http\n200 2")
            #expect(lambda.requests.count == 3)
            #expect(lambda.requests.allSatisfy { $0.headers.contains { $0.0.lowercased() == "authorization" && $0.1.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") } })

            gateway.signal(SIGTERM)
            #expect(await gateway.waitForExit(timeout: .seconds(5)) == 0)
        } teardown: {
            gateway.stop()
            await lambda.shutdown()
            files.directory.remove()
        }
    }

    @Test func aBadReloadKeepsServingTheLastGoodFileAndAGoodOneApplies() async throws {
        let lambdaCA = try TestCA()
        let lambda = try await TestHTTPServer(tls: try lambdaCA.issueLeaf().serverTLSConfiguration()) { _ in ScriptedResponse(json: #"{"statusCode":200,"body":"ok"}"#) }
        let files = try Self.files(lambdaCA: lambdaCA)
        let original = try String(contentsOfFile: files.config, encoding: .utf8)
        let gateway = try RunningProcess(
            [
                CLI.executable.path, "run", "--config", files.config, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--lambda-endpoint", lambda.baseURL, "--lambda-ca-file", files.lambdaCAFile,
            ],
            environment: GatewayProcess.environment
        )
        try await withTeardown {
            let meshPort = try Self.port(in: try await gateway.waitForLine(containing: "listening on"))
            #expect(try await Self.meshCall(port: meshPort, certificate: files.intruderCertificate, key: files.intruderKey).stdout.hasSuffix("403"))

            // The file's accessLogs: block is Consul's AccessLogs; SIGHUP reopens the moved file.
            let log = files.directory.url.appendingPathComponent("access.log").path
            try original.replacingOccurrences(of: "services:\n", with: "accessLogs:\n  type: file\n  path: access.log\n  textFormat: \"%RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\"\nservices:\n")
                .write(toFile: files.config, atomically: true, encoding: .utf8)
            gateway.signal(SIGHUP)
            _ = try await gateway.waitForLine(containing: "access log on")
            #expect(try await Self.meshCall(port: meshPort, certificate: files.intruderCertificate, key: files.intruderKey).stdout.hasSuffix("403"))
            let denied = try await AccessLogRunTests.lines(log, count: 1)
            #expect(denied == ["403 rbac_access_denied"], "\(denied)")
            try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
            gateway.signal(SIGHUP)
            try await AccessLogRunTests.waitForOutput(gateway, "SIGHUP received", count: 2)
            #expect(try await Self.meshCall(port: meshPort, certificate: files.webCertificate, key: files.webKey).stdout == "ok\n200")
            let logDeadline = ContinuousClock.now + .seconds(10)
            while (try? String(contentsOfFile: log, encoding: .utf8)) != "200 via_upstream\n" && ContinuousClock.now < logDeadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(try String(contentsOfFile: log, encoding: .utf8) == "200 via_upstream\n")
            #expect(try String(contentsOfFile: log + ".1", encoding: .utf8) == "403 rbac_access_denied\n")

            try (original + "    bogus: true\n").write(toFile: files.config, atomically: true, encoding: .utf8)
            gateway.signal(SIGHUP)
            _ = try await gateway.waitForLine(containing: "not reloaded")
            #expect(try await Self.meshCall(port: meshPort, certificate: files.webCertificate, key: files.webKey).stdout == "ok\n200")

            try original.replacingOccurrences(of: "source: web", with: "source: intruder").write(toFile: files.config, atomically: true, encoding: .utf8)
            gateway.signal(SIGHUP)
            let deadline = ContinuousClock.now + .seconds(10)
            while gateway.output.filter({ $0.contains("static configuration loaded") }).count < 2 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try await Self.meshCall(port: meshPort, certificate: files.intruderCertificate, key: files.intruderKey).stdout == "ok\n200")
            #expect(try await Self.meshCall(port: meshPort, certificate: files.webCertificate, key: files.webKey).stdout.hasSuffix("403"))
        } teardown: {
            gateway.stop()
            await lambda.shutdown()
            files.directory.remove()
        }
    }

    @Test func anInvalidFileStopsTheStartWithTheProblem() async throws {
        let lambdaCA = try TestCA()
        let files = try Self.files(lambdaCA: lambdaCA)
        defer { files.directory.remove() }
        let text = try String(contentsOfFile: files.config, encoding: .utf8).replacingOccurrences(of: "function:orders", with: "orders")
        try text.write(toFile: files.config, atomically: true, encoding: .utf8)
        let result = try await ChildProcess.run([CLI.executable.path, "run", "--config", files.config, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], environment: GatewayProcess.environment)
        #expect(result.status != 0)
        #expect(result.stderr.contains("gateway.yaml:6:10: services[0].arn: invalid function ARN"), "\(result.stderr)")
        #expect(!result.stderr.contains("Usage:"), "a configuration error is not a usage error")
    }

    @Test func aNonLoopbackUpstreamNeedsTheFlag() async throws {
        let result = try await ChildProcess.run([CLI.executable.path, "run", "--config", "/nonexistent.yaml", "--upstream", "orders=0.0.0.0:18080"], environment: GatewayProcess.environment)
        #expect(result.status != 0)
        #expect(result.stderr.contains("not a loopback address") && result.stderr.contains("--allow-non-loopback"), "\(result.stderr)")
    }
}

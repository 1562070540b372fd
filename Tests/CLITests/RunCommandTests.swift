import Foundation
import Testing
import TestSupport

@Suite("lambda-gateway run", .serialized)
struct RunCommandTests {
    @Test func servesMeshRequestsFromConsulConfigurationAndReportsOnTheAdminPort() async throws {
        let consul = try await ConsulTestServer()
        let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
        consul.registerInstance("orders")
        try consul.setConfigEntry(#"{"Kind":"service-defaults","Name":"orders","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders"}}]}"#)
        try consul.linkServices(["orders"])
        let lambdaCA = try TestCA()
        let lambda = try await TestHTTPServer(tls: try lambdaCA.issueLeaf().serverTLSConfiguration()) { request in
            ScriptedResponse(json: #"{"statusCode":200,"headers":{"content-type":"text/plain"},"body":"hello from orders"}"#)
        }
        let files = try TemporaryDirectory()
        let gateway = try RunningProcess(
            [CLI.executable.path, "run", "--gateway-name", "lambda-gateway", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--consul-addr", consul.baseURL, "--lambda-endpoint", lambda.baseURL, "--lambda-ca-file", try lambdaCA.writePEM(to: files.url)],
            environment: ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"]
        )
        try await withTeardown {
            let listenPort = try #require(try await gateway.waitForLine(containing: "listening on").split(separator: ":").last.map(String.init))
            let adminPort = try #require(try await gateway.waitForLine(containing: "admin on").split(separator: ":").last.map(String.init))
            func admin(_ path: String) async throws -> ChildProcess.Output {
                try await ChildProcess.run(["curl", "-sS", "-w", "\n%{http_code}", "http://127.0.0.1:\(adminPort)\(path)"])
            }
            #expect(try await admin("/live").stdout.hasSuffix("200"))
            var ready = try await admin("/ready")
            let deadline = ContinuousClock.now + .seconds(10)
            while !ready.stdout.hasSuffix("200") && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                ready = try await admin("/ready")
            }
            #expect(ready.stdout.hasSuffix("200"), "\(ready.stdout)")
            // Ready means a first configuration is in; wait until it includes orders.
            var served = try await admin("/metrics").stdout
            while !served.contains("lambda_gateway_services_served 1") && ContinuousClock.now < deadline + .seconds(10) {
                try await Task.sleep(for: .milliseconds(50))
                served = try await admin("/metrics").stdout
            }

            let client = try consul.activeRootCA.issueLeaf(commonName: "web", dnsNames: [], ipAddresses: [], uris: ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/web"])
            let cert = try files.file("web.pem", contents: try client.certificatePEM)
            let key = try files.file("web.key", contents: client.keyPEM)
            let sni = "orders.default.dc1.internal.\(trustDomain)"
            let call = try await ChildProcess.run(["curl", "-sS", "-k", "--cert", cert, "--key", key, "--resolve", "\(sni):\(listenPort):127.0.0.1", "-w", "\n%{http_code}", "https://\(sni):\(listenPort)/hello"])
            #expect(call.stdout == "hello from orders\n200", "\(call.stdout) \(call.stderr)")
            #expect(lambda.requests.first?.path == "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders/invocations")

            let config = try await admin("/config").stdout
            #expect(config.contains("\"orders\"") && config.contains("arn:aws:lambda:us-east-1:123456789012:function:orders"))
            #expect(!config.contains("PRIVATE KEY"))
            let metrics = try await admin("/metrics").stdout
            #expect(metrics.contains("lambda_gateway_requests_total{service=\"orders\",status=\"200\"} 1"), "\(metrics)")
            #expect(metrics.contains("lambda_gateway_services_served 1"))

            // SIGTERM: stop accepting, drain, exit 0.
            gateway.signal(SIGTERM)
            let status = await gateway.waitForExit(timeout: .seconds(5))
            #expect(status == 0, "\(gateway.output.suffix(5).joined(separator: "\n"))")
            #expect(gateway.output.contains { $0.contains("draining in-flight requests") })
            #expect(gateway.output.last?.hasSuffix("lambda-gateway: stopped") == true)
        } teardown: {
            gateway.stop()
            await lambda.shutdown()
            await consul.shutdown()
            files.remove()
        }
    }
}

@Suite("lambda-gateway run drains on SIGTERM", .serialized)
struct RunDrainTests {
    @Test func aRequestInFlightAtSIGTERMCompletes() async throws {
        let consul = try await ConsulTestServer()
        let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
        consul.registerInstance("orders")
        try consul.setConfigEntry(#"{"Kind":"service-defaults","Name":"orders","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders"}}]}"#)
        try consul.linkServices(["orders"])
        let lambdaCA = try TestCA()
        let lambda = try await TestHTTPServer(tls: try lambdaCA.issueLeaf().serverTLSConfiguration()) { _ in
            ScriptedResponse(json: #"{"statusCode":200,"body":"slow but done"}"#, delay: .milliseconds(1500))
        }
        let files = try TemporaryDirectory()
        let gateway = try RunningProcess(
            [CLI.executable.path, "run", "--gateway-name", "lambda-gateway", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--consul-addr", consul.baseURL, "--lambda-endpoint", lambda.baseURL, "--lambda-ca-file", try lambdaCA.writePEM(to: files.url)],
            environment: ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"]
        )
        try await withTeardown {
            let listenPort = try #require(try await gateway.waitForLine(containing: "listening on").split(separator: ":").last.map(String.init))
            _ = try await gateway.waitForLine(containing: "service served")
            let client = try consul.activeRootCA.issueLeaf(commonName: "web", dnsNames: [], ipAddresses: [], uris: ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/web"])
            let cert = try files.file("web.pem", contents: try client.certificatePEM)
            let key = try files.file("web.key", contents: client.keyPEM)
            let sni = "orders.default.dc1.internal.\(trustDomain)"
            let call = Task {
                try await ChildProcess.run(["curl", "-sS", "-k", "--cert", cert, "--key", key, "--resolve", "\(sni):\(listenPort):127.0.0.1", "-w", "\n%{http_code}", "https://\(sni):\(listenPort)/slow"])
            }
            // Once the invoke is in flight, ask the gateway to stop.
            let deadline = ContinuousClock.now + .seconds(10)
            while lambda.requests.isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            gateway.signal(SIGTERM)
            let answer = try await call.value
            #expect(answer.stdout == "slow but done\n200", "\(answer.stdout) \(answer.stderr)")
            let status = await gateway.waitForExit(timeout: .seconds(10))
            #expect(status == 0)
            // After the drain no new connection is accepted.
            let refused = try await ChildProcess.run(["curl", "-sS", "-k", "--cert", cert, "--key", key, "--resolve", "\(sni):\(listenPort):127.0.0.1", "https://\(sni):\(listenPort)/late"])
            #expect(refused.status != 0)
        } teardown: {
            gateway.stop()
            await lambda.shutdown()
            await consul.shutdown()
            files.remove()
        }
    }
}

import Foundation
import TestSupport
import Testing

/// `lambda-gateway run` as a process, with the Consul API test server linking `orders`, an HTTPS
/// Lambda stand-in, and a mesh client certificate for `web`.
struct GatewayProcess {
    static let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
    static let sni = "orders.default.dc1.internal.\(trustDomain)"
    static let environment = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"]

    let consul: ConsulTestServer
    let lambda: TestHTTPServer
    let files: TemporaryDirectory
    let lambdaCAFile: String
    let clientCertificate: String
    let clientKey: String
    /// The first gateway instance.
    let instance: Instance
    var gateway: RunningProcess { instance.process }
    var listenPort: String { instance.listenPort }
    var adminPort: String { instance.adminPort }

    /// One running `lambda-gateway run` and its bound ports.
    struct Instance {
        let process: RunningProcess
        let listenPort: String
        let adminPort: String
    }

    static func with(
        lambdaHandler: @escaping TestHTTPServer.Handler, arguments: [String] = ["--register", "none"], environment: [String: String] = Self.environment, _ body: (GatewayProcess) async throws -> Void
    ) async throws {
        let consul = try await ConsulTestServer()
        consul.registerInstance("orders")
        try consul.setConfigEntry(
            #"{"Kind":"service-defaults","Name":"orders","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders"}}]}"#
        )
        try consul.linkServices(["orders"])
        let lambdaCA = try TestCA()
        let lambda = try await TestHTTPServer(tls: try lambdaCA.issueLeaf().serverTLSConfiguration(), handler: lambdaHandler)
        let files = try TemporaryDirectory()
        var started: [RunningProcess] = []
        try await withTeardown {
            let client = try consul.activeRootCA.issueLeaf(commonName: "web", dnsNames: [], ipAddresses: [], uris: ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/web"])
            let caFile = try lambdaCA.writePEM(to: files.url)
            let first = try startInstance(consul: consul, lambda: lambda, lambdaCAFile: caFile, arguments: arguments, environment: environment) { started.append($0) }
            let process = GatewayProcess(
                consul: consul, lambda: lambda, files: files, lambdaCAFile: caFile,
                clientCertificate: try files.file("web.pem", contents: try client.certificatePEM), clientKey: try files.file("web.key", contents: client.keyPEM),
                instance: try await first.value
            )
            try await body(process)
        } teardown: {
            for process in started { process.stop() }
            await lambda.shutdown()
            await consul.shutdown()
            files.remove()
        }
    }

    static func startInstance(
        consul: ConsulTestServer, lambda: TestHTTPServer, lambdaCAFile: String, arguments: [String], environment: [String: String] = Self.environment, started: (RunningProcess) -> Void
    ) throws -> Task<Instance, any Error> {
        let process = try RunningProcess(
            [
                CLI.executable.path, "run", "--gateway-name", "lambda-gateway", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--consul-addr", consul.baseURL, "--lambda-endpoint", lambda.baseURL, "--lambda-ca-file", lambdaCAFile,
            ] + arguments,
            environment: environment
        )
        started(process)
        return Task {
            func port(_ marker: String) async throws -> String {
                try #require(try await process.waitForLine(containing: marker).split(separator: ":").last.map(String.init))
            }
            let instance = Instance(process: process, listenPort: try await port("listening on"), adminPort: try await port("admin on"))
            _ = try await process.waitForLine(containing: "service served")
            return instance
        }
    }

    func admin(_ path: String, instance: Instance? = nil) async throws -> ChildProcess.Output {
        try await ChildProcess.run(["curl", "-sS", "-w", "\n%{http_code}", "http://127.0.0.1:\((instance ?? self.instance).adminPort)\(path)"])
    }

    /// `/metrics` once `condition` holds for it. A request is counted when its answer's write
    /// completes, which curl can see first: a test waits for the count it then reads.
    @discardableResult
    func metrics(until what: String, instance: Instance? = nil, _ condition: (PrometheusText) -> Bool) async throws -> String {
        var text = ""
        try await waitUntilAsync("/metrics: \(what)", timeout: .seconds(10)) {
            text = try await admin("/metrics", instance: instance).stdout
            return condition(PrometheusText(text))
        }
        return text
    }

    /// Waits until `/metrics` counts `count` open client connections.
    func waitForOpenConnections(_ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let metrics = PrometheusText(try await admin("/metrics").stdout)
            if metrics.value("lambda_gateway_connections_open") == Double(count) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSupportError("the gateway never had \(count) open connections")
    }

    /// A mesh call to `orders` through the gateway, printing the body then the status code.
    func call(_ path: String, instance: Instance? = nil) async throws -> ChildProcess.Output {
        let port = (instance ?? self.instance).listenPort
        return try await ChildProcess.run([
            "curl", "-sS", "-k", "--cert", clientCertificate, "--key", clientKey, "--resolve", "\(Self.sni):\(port):127.0.0.1",
            "-w", "\n%{http_code}", "https://\(Self.sni):\(port)\(path)",
        ])
    }
}

@Suite("lambda-gateway run", .serialized)
struct RunCommandTests {
    @Test func servesMeshRequestsFromConsulConfigurationAndReportsOnTheAdminPort() async throws {
        try await GatewayProcess.with(lambdaHandler: { _ in
            ScriptedResponse(json: #"{"statusCode":200,"headers":{"content-type":"text/plain"},"body":"hello from orders"}"#)
        }) { process in
            #expect(try await process.admin("/live").stdout.hasSuffix("200"))
            #expect(try await process.admin("/ready").stdout.hasSuffix("200"))
            let call = try await process.call("/hello")
            #expect(call.stdout == "hello from orders\n200", "\(call.stdout) \(call.stderr)")
            #expect(process.lambda.requests.first?.path == "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders/invocations")

            let config = try await process.admin("/config").stdout
            #expect(config.contains("\"orders\"") && config.contains("arn:aws:lambda:us-east-1:123456789012:function:orders"))
            #expect(!config.contains("PRIVATE KEY"))
            let metrics = try await process.metrics(until: "the request is counted") { $0.sum("lambda_gateway_requests_total") == 1 }
            let samples = PrometheusText(metrics)
            #expect(samples.value("lambda_gateway_requests_total", ["service": "orders", "status": "200", "outcome": "invoked"]) == 1, "\(metrics)")
            #expect(samples.value("lambda_gateway_lambda_call_duration_seconds_count", ["service": "orders"]) == 1)
            #expect(samples.value("lambda_gateway_services_served") == 1)
            #expect(samples.value("lambda_gateway_consul_watch_errors_total") == nil)

            // SIGTERM: stop accepting, drain, exit 0.
            process.gateway.signal(SIGTERM)
            let status = await process.gateway.waitForExit(timeout: .seconds(5))
            #expect(status == 0, "\(process.gateway.output.suffix(5).joined(separator: "\n"))")
            #expect(process.gateway.output.contains { $0.contains("draining in-flight requests") })
            // The status line is on stdout and the log on stderr, read by separate pipes: only its
            // presence is certain, not its place after the last log line.
            #expect(process.gateway.output.contains { $0.hasSuffix("lambda-gateway: stopped") })
        }
    }

    @Test func anIdleGatewaySpendsNoCPU() async throws {
        try await GatewayProcess.with(lambdaHandler: { _ in ScriptedResponse(json: "{}") }) { process in
            #expect(try await process.call("/warm").stdout.hasSuffix("200"))
            // Served, nothing due for minutes: the process sleeps. (A leaf reader whose cancelled
            // timers woke it again spun a whole core here.) Clock ticks are 1/100 s; a busy
            // machine delays an idle process, it does not make it spend CPU.
            func cpuTicks() throws -> Int {
                let stat = try String(contentsOfFile: "/proc/\(process.gateway.pid)/stat", encoding: .utf8)
                let fields = stat[stat.range(of: ") ")!.upperBound...].split(separator: " ")
                return Int(fields[11])! + Int(fields[12])!
            }
            let before = try cpuTicks()
            // The measurement's window, not a wait for an event.
            try await Task.sleep(for: .seconds(3))
            let spent = try cpuTicks() - before
            #expect(spent < 60, "\(spent) ticks of CPU in 3 s while idle")
        }
    }

    @Test func aRequestInFlightAtSIGTERMCompletes() async throws {
        try await GatewayProcess.with(lambdaHandler: { _ in
            ScriptedResponse(json: #"{"statusCode":200,"body":"slow but done"}"#, delay: .milliseconds(1500))
        }) { process in
            // An idle mesh connection (handshake done, nothing sent) is closed at SIGTERM, before
            // the in-flight request ends, not when the process exits.
            let idle = Task {
                let output = try await ChildProcess.run([
                    "timeout", "10", "openssl", "s_client", "-quiet", "-ign_eof", "-connect", "127.0.0.1:\(process.listenPort)",
                    "-servername", GatewayProcess.sni, "-cert", process.clientCertificate, "-key", process.clientKey,
                ])
                return (output, ContinuousClock.now)
            }
            try await process.waitForOpenConnections(1)
            let call = Task {
                let output = try await process.call("/slow")
                return (output, ContinuousClock.now)
            }
            // Once the invoke is in flight, ask the gateway to stop.
            try await waitUntil("the invoke is in flight", timeout: .seconds(10)) { !process.lambda.requests.isEmpty }
            process.gateway.signal(SIGTERM)
            let (answer, answered) = try await call.value
            #expect(answer.stdout == "slow but done\n200", "\(answer.stdout) \(answer.stderr)")
            let (closed, closedAt) = try await idle.value
            #expect(closed.status == 0, "\(closed.stderr)")
            #expect(closedAt < answered, "the idle connection stayed open until the in-flight request was done")
            #expect(await process.gateway.waitForExit(timeout: .seconds(10)) == 0)
            // After the drain no new connection is accepted.
            #expect(try await process.call("/late").status != 0)
        }
    }

    /// `--default-intention-policy deny` overrides the agent's `allow` (the test agent's ACL default):
    /// a caller no intention names is refused.
    @Test func theDefaultIntentionPolicyFlagOverridesTheAgents() async throws {
        try await GatewayProcess.with(lambdaHandler: { _ in ScriptedResponse(json: #"{"statusCode":200,"body":"hi"}"#) }, arguments: ["--register", "none"]) { process in
            let open = try await process.call("/open")
            #expect(open.stdout.hasSuffix("200"), "the agent's allow: \(open.stdout)")
        }
        try await GatewayProcess.with(
            lambdaHandler: { _ in ScriptedResponse(json: #"{"statusCode":200,"body":"hi"}"#) }, arguments: ["--register", "none", "--default-intention-policy", "deny"]
        ) { process in
            let refused = try await process.call("/closed")
            #expect(refused.stdout.hasSuffix("403") && refused.stdout.contains("RBAC: access denied"), "\(refused.stdout)")
        }
    }

    @Test func idleTimeoutFlagClosesSilentMeshConnections() async throws {
        let refused = try await CLI.run(["run", "--gateway-name", "g", "--idle-timeout", "0s", "--register", "none"], environment: GatewayProcess.environment)
        #expect(refused.status != 0 && refused.stderr.contains("--idle-timeout must be more than zero"), "\(refused.stderr)")
        let policy = try await CLI.run(["run", "--gateway-name", "g", "--default-intention-policy", "maybe", "--register", "none"], environment: GatewayProcess.environment)
        #expect(policy.status != 0 && policy.stderr.contains("--default-intention-policy must be allow or deny, got maybe"), "\(policy.stderr)")
        let sampling = try await CLI.run(["run", "--gateway-name", "g", "--trace-sampling", "always", "--register", "none"], environment: GatewayProcess.environment)
        #expect(sampling.status != 0 && sampling.stderr.contains("--trace-sampling must be honor or ignore, got always"), "\(sampling.stderr)")

        try await GatewayProcess.with(lambdaHandler: { _ in ScriptedResponse(json: "{}") }, arguments: ["--register", "none", "--idle-timeout", "300ms"]) { process in
            // A sidecar that completes the mTLS handshake and then sends nothing: openssl keeps the
            // connection open (-ign_eof) until the gateway closes it; `timeout` ends it otherwise.
            let started = ContinuousClock.now
            let silent = try await ChildProcess.run([
                "timeout", "10", "openssl", "s_client", "-quiet", "-ign_eof", "-connect", "127.0.0.1:\(process.listenPort)",
                "-servername", GatewayProcess.sni, "-cert", process.clientCertificate, "-key", process.clientKey,
            ])
            let elapsed = ContinuousClock.now - started
            #expect(silent.status != 124, "the gateway kept a silent connection open: \(silent.stderr)")
            #expect(silent.status == 0, "the handshake did not complete: \(silent.stderr)")
            #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(5), "\(elapsed)")
            // Busy connections are not idle: a request still succeeds.
            #expect(try await process.call("/after").stdout.hasSuffix("200"))
        }
    }

    /// The names of the gateway's threads, from /proc.
    static func threadNames(_ pid: Int32) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").compactMap {
            try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test func swiftConcurrencyRunsOnTheEventLoopsUnlessAskedNotTo() async throws {
        let answer: TestHTTPServer.Handler = { _ in ScriptedResponse(json: #"{"statusCode":200,"body":"ok"}"#) }
        // Default: NIO's shared group of --event-loops threads is also Swift's global executor.
        try await GatewayProcess.with(lambdaHandler: answer, arguments: ["--register", "none", "--event-loops", "3"]) { process in
            #expect(try await process.call("/x").stdout.hasSuffix("200"))
            let names = try Self.threadNames(process.gateway.pid)
            // Distinct names: a thread another one starts (the access log's writer, a dispatch
            // worker) carries its creator's name until it names itself.
            #expect(Set(names.filter { $0.hasPrefix("NIO-SGLTN-") }).count == 3, "\(names)")
            #expect(!names.contains { $0.hasPrefix("NIO-ELT-") }, "\(names)")
        }
        // LAMBDA_GATEWAY_EXECUTOR=swift: a group of the gateway's own, Swift's executor left alone.
        var environment = GatewayProcess.environment
        environment["LAMBDA_GATEWAY_EXECUTOR"] = "swift"
        try await GatewayProcess.with(lambdaHandler: answer, arguments: ["--register", "none", "--event-loops", "3"], environment: environment) { process in
            #expect(try await process.call("/x").stdout.hasSuffix("200"))
            let names = try Self.threadNames(process.gateway.pid)
            #expect(names.filter { $0.hasPrefix("NIO-ELT-") }.count == 3, "\(names)")
        }
    }
}

import AWSCredentials
import AWSSigV4
import Atomics
import ConsulAPI
import Foundation
import GatewayCore
import LambdaInvoke
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import TestSupport
import Testing
import Tracing

/// The whole path on 127.0.0.1: Consul test server → snapshot → mTLS listener → HTTP/1.1 →
/// signed Invoke to an HTTPS Lambda stand-in → response. Driven by curl as a real client.
struct GatewayFixture {
    let tls: TLSFixture
    let lambda: TestHTTPServer
    let files: TemporaryDirectory
    let port: Int
    /// TCP connections the gateway accepted.
    let accepted: ManagedAtomic<Int>
    let metrics: GatewayMetrics
    let processor: RequestProcessor

    static func with(
        settings: ProcessingSettings = ProcessingSettings(), tracer: (any Tracer)? = nil, lambdaHandler: @escaping TestHTTPServer.Handler, _ body: (GatewayFixture) async throws -> Void
    ) async throws {
        try await TLSFixture.with { tls in
            let ca = try TestCA()
            let lambda = try await TestHTTPServer(tls: try ca.issueLeaf().serverTLSConfiguration(), handler: lambdaHandler)
            let files = try TemporaryDirectory()
            let invoker = try LambdaInvokeClient(
                configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(customEndpoint: lambda.baseURL), caFile: try ca.writePEM(to: files.url)),
                credentials: StaticCredentialSource(Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret")),
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                logger: Logger(label: "invoke")
            )
            let metrics = GatewayMetrics()
            let processor = RequestProcessor(store: tls.snapshots.store, invoker: invoker, settings: settings, metrics: metrics, tracer: tracer, logger: Logger(label: "gateway"))
            let acceptor = MeshTLSAcceptor(store: tls.snapshots.store, metrics: metrics, logger: Logger(label: "tls"))
            let accepted = ManagedAtomic(0)
            let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    accepted.wrappingIncrement(ordering: .relaxed)
                    return acceptor.configure(channel) { channel, connection in processor.configureHTTP(channel, connection: connection) }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            let fixture = GatewayFixture(tls: tls, lambda: lambda, files: files, port: listener.localAddress!.port!, accepted: accepted, metrics: metrics, processor: processor)
            try await withTeardown {
                try await body(fixture)
            } teardown: {
                try? await listener.close()
                try? await invoker.shutdown()
                await lambda.shutdown()
                files.remove()
            }
        }
    }

    /// curl with a mesh client certificate for `caller` (a new one from the active root, or `leaf`),
    /// SNI of `service`, HTTP/1.1 unless `httpVersion` says otherwise (`--http2`: ALPN h2).
    func curl(_ service: String, path: String, caller: String = "web", leaf given: TestLeaf? = nil, httpVersion: String = "--http1.1", extra: [String] = []) async throws -> (
        status: Int, body: String, headers: String
    ) {
        let leaf = try given ?? tls.clientLeaf(caller)
        let cert = try files.file("\(caller).pem", contents: try leaf.certificatePEM)
        let key = try files.file("\(caller).key", contents: leaf.keyPEM)
        let host = tls.sni(service)
        let headersFile = files.url.appendingPathComponent("headers-\(UUID().uuidString)").path
        // -k: Consul leaves carry a SPIFFE URI SAN, not the SNI as a DNS name; sidecars check the URI.
        let output = try await ChildProcess.run(
            ["curl", "-sS", "-k", httpVersion, "--cert", cert, "--key", key, "--resolve", "\(host):\(port):127.0.0.1", "-D", headersFile, "-w", "\n%{http_code}"]
                + extra + ["https://\(host):\(port)\(path)"]
        )
        guard output.status == 0 else { throw TestSupportError("curl failed (\(output.status)): \(output.stderr)") }
        let lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let headers = (try? String(contentsOfFile: headersFile, encoding: .utf8)) ?? ""
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"), headers)
    }
}

extension GatewayFixture {
    /// What `/metrics` would answer now.
    func scrape() -> PrometheusText {
        PrometheusText(metrics.exposition(snapshot: tls.snapshots.store.snapshot, inFlight: 0))
    }

    /// A sidecar-like mTLS connection to `service` that sends nothing; returns whether the gateway
    /// closed it within `limit` (the test closes it itself after that).
    func gatewayClosesSilentConnection(_ service: String, alpn: [String], within limit: TimeAmount) async throws -> Bool {
        let connection = try await RecordingConnection.open(self, service: service, alpn: alpn)
        return await connection.closedByGateway(within: .nanoseconds(limit.nanoseconds))
    }
}

/// A Lambda stand-in that returns the payload it received inside a shaped response.
let echoPayload: TestHTTPServer.Handler = { request in
    if request.header("x-amz-invocation-type") == "Event" { return ScriptedResponse(status: 202, headers: [("x-amzn-RequestId", "async-1")]) }
    let body = String(data: try! JSONSerialization.data(withJSONObject: [request.bodyText], options: [.withoutEscapingSlashes]), encoding: .utf8)!.dropFirst().dropLast()
    return ScriptedResponse(headers: [("x-amzn-RequestId", "req-42")], json: #"{"statusCode":201,"headers":{"x-seen":"yes"},"body":\#(body)}"#)
}

@Suite("HTTP/1.1 through the gateway, driven by curl", .serialized)
struct HTTP1GatewayTests {
    @Test func aRequestReachesTheFunctionAndTheResponseComesBack() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let answer = try await gateway.curl(
                "orders", path: "/orders/42/items?expand=true&expand=false", extra: ["-H", "content-type: application/json", "-H", "x-trace: a", "-H", "x-trace: b", "-d", #"{"qty": 2}"#])
            #expect(answer.status == 201, "\(answer.body)")
            #expect(answer.headers.lowercased().contains("x-seen: yes"))
            #expect(answer.headers.lowercased().contains("x-amzn-requestid: req-42"))
            let payload = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as! [String: Any]
            #expect(payload["raw_path"] as? String == "/orders/42/items?expand=true&expand=false")
            #expect(payload["method"] as? String == "POST")
            #expect(payload["body"] as? String == #"{"qty": 2}"#)
            #expect((payload["query_string_parameters"] as? [String: String]) == ["expand": "true"])
            let headers = try #require(payload["headers"] as? [String: String])
            #expect(headers["x-trace"] == "a,b" && headers["x-forwarded-proto"] == "https" && headers["host"] == nil)
            #expect(headers["x-request-id"]?.count == 36)
            let xfcc = try #require(headers["x-forwarded-client-cert"])
            #expect(xfcc.hasPrefix("By=spiffe://\(gateway.tls.trustDomain)/ns/default/dc/dc1/svc/orders;Hash="))
            #expect(xfcc.hasSuffix(";URI=spiffe://\(gateway.tls.trustDomain)/ns/default/dc/dc1/svc/web"))
            // Signed, with the full ARN in the path and no client header sent to AWS.
            let invoke = try #require(gateway.lambda.requests.first)
            #expect(invoke.path == "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders/invocations")
            #expect(invoke.header("authorization")?.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") == true)
            #expect(invoke.header("x-trace") == nil)
        }
    }

    /// The caller's trace becomes the Invoke call's X-Amzn-Trace-Id (the function sees the caller's
    /// own headers in its payload as before). HTTP/2: `theCallersB3TraceReachesTheFunction`.
    @Test func theCallersTraceReachesTheFunctionsXRaySegment() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let w3c = try await gateway.curl("orders", path: "/w3c", extra: ["--http1.1", "-H", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
            let b3 = try await gateway.curl(
                "orders", path: "/b3", extra: ["--http1.1", "-H", "X-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124", "-H", "X-B3-SpanId: a2fb4a1d1a96d312", "-H", "X-B3-Sampled: 0"]
            )
            let own = try await gateway.curl("orders", path: "/own", extra: ["-H", "X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"])
            let none = try await gateway.curl("orders", path: "/none", extra: ["-H", "traceparent: 00-not-a-trace"])
            #expect([w3c, b3, own, none].allSatisfy { $0.status == 201 })
            func sent(_ path: String) throws -> String? {
                try #require(gateway.lambda.requests.first { $0.bodyText.contains(#""raw_path":"\#(path)""#) }).header("x-amzn-trace-id")
            }
            #expect(try sent("/w3c") == "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1")
            #expect(try sent("/b3") == "Root=1-463ac35c-9f6413ad48485a3953bb6124;Parent=a2fb4a1d1a96d312;Sampled=0")
            #expect(try sent("/own") == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
            #expect(try sent("/none") == nil, "a malformed traceparent sends no trace")
            #expect(w3c.body.contains("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), "the function still sees the caller's header")
            #expect(!w3c.headers.lowercased().contains("traceresponse"), "no span of its own without a tracer: nothing to answer")
        }
    }

    /// `--trace-sampling ignore`: the trace still reaches the function, its sampling left to X-Ray.
    @Test func aCallersSamplingDecisionCanBeIgnored() async throws {
        var settings = ProcessingSettings()
        settings.honorCallerSampling = false
        try await GatewayFixture.with(settings: settings, lambdaHandler: echoPayload) { gateway in
            let answer = try await gateway.curl("orders", path: "/forced", extra: ["-H", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
            #expect(answer.status == 201)
            #expect(gateway.lambda.requests.first?.header("x-amzn-trace-id") == "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=?")
        }
    }

    @Test func asyncServicesAnswer202() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let answer = try await gateway.curl("thumbnails", path: "/resize", extra: ["-H", "content-type: application/json", "-d", #"{"img":"a.png"}"#])
            #expect(answer.status == 202)
            #expect(gateway.lambda.requests.first?.header("x-amz-invocation-type") == "Event")
            #expect(gateway.lambda.requests.first?.bodyText == #"{"img":"a.png"}"#)  // passthrough
        }
    }

    @Test func intentionsDenyWith403AndNoLambdaCall() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            gateway.tls.snapshots.consul.setDefaultACLPolicy("deny")
            try gateway.tls.snapshots.consul.setConfigEntry(
                #"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"allow"},{"Name":"billing","Action":"","Permissions":[{"Action":"allow","HTTP":{"PathPrefix":"/orders","Methods":["GET"]}}]}]}"#
            )
            try await gateway.tls.snapshots.waitFor("deny policy") { $0.defaultIntentionPolicy == .deny && $0.services["orders"]?.intentions.count == 2 }
            #expect(try await gateway.curl("orders", path: "/x", caller: "web").status == 201)
            #expect(try await gateway.curl("orders", path: "/orders/1", caller: "billing").status == 201)
            let denied = try await gateway.curl("orders", path: "/admin", caller: "billing")
            #expect(denied.status == 403 && denied.body == "RBAC: access denied")
            let stranger = try await gateway.curl("orders", path: "/orders/1", caller: "api")
            #expect(stranger.status == 403)
            #expect(gateway.lambda.requests.count == 2)
        }
    }

    @Test func lambdaErrorsMapToGatewayStatuses() async throws {
        let answers: [String: ScriptedResponse] = [
            "/throttled": ScriptedResponse(status: 429, headers: [("X-Amzn-ErrorType", "TooManyRequestsException"), ("Retry-After", "3")], json: #"{"message":"Rate exceeded"}"#),
            "/missing": ScriptedResponse(status: 404, headers: [("X-Amzn-ErrorType", "ResourceNotFoundException")], json: #"{"message":"Function not found"}"#),
            "/failed": ScriptedResponse(headers: [("X-Amz-Function-Error", "Unhandled")], json: #"{"errorMessage":"boom"}"#),
            "/garbage": ScriptedResponse(json: #"{"statusCode":"abc"}"#),
        ]
        try await GatewayFixture.with(lambdaHandler: { request in
            let payload = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]
            return answers[(payload?["raw_path"] as? String) ?? ""] ?? ScriptedResponse(json: "{}")
        }) { gateway in
            let throttled = try await gateway.curl("orders", path: "/throttled", extra: ["-X", "POST"])
            #expect(throttled.status == 429 && throttled.headers.lowercased().contains("retry-after: 3"))
            let missing = try await gateway.curl("orders", path: "/missing", extra: ["-X", "POST"])
            #expect(missing.status == 502 && missing.body.contains("ResourceNotFoundException"))
            let failed = try await gateway.curl("orders", path: "/failed", extra: ["-X", "POST"])
            #expect(failed.status == 502 && failed.body.contains("boom") && failed.headers.lowercased().contains("x-amz-function-error: unhandled"))
            let garbage = try await gateway.curl("orders", path: "/garbage", extra: ["-X", "POST"])
            #expect(garbage.status == 502 && garbage.body.contains("InvalidFunctionResponse"))
        }
    }

    @Test func metricsCountEveryAnswerByOutcomeAndTimeEveryLambdaCall() async throws {
        var settings = ProcessingSettings()
        settings.maximumSyncPayloadBytes = 4096
        try await GatewayFixture.with(
            settings: settings,
            lambdaHandler: { request in
                let payload = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]
                switch payload?["raw_path"] as? String {
                case "/failed": return ScriptedResponse(headers: [("X-Amz-Function-Error", "Unhandled")], json: #"{"errorMessage":"boom"}"#)
                case "/throttled": return ScriptedResponse(status: 429, headers: [("X-Amzn-ErrorType", "TooManyRequestsException")], json: #"{"message":"Rate exceeded"}"#)
                default: return await echoPayload(request)
                }
            }
        ) { gateway in
            try gateway.tls.snapshots.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"api","Action":"deny"},{"Name":"*","Action":"allow"}]}"#)
            try await gateway.tls.snapshots.waitFor("intentions") { $0.services["orders"]?.intentions.count == 2 }
            #expect(try await gateway.curl("orders", path: "/ok", extra: ["-X", "POST"]).status == 201)
            #expect(try await gateway.curl("orders", path: "/ok", extra: ["-X", "POST"]).status == 201)
            #expect(try await gateway.curl("orders", path: "/failed", extra: ["-X", "POST"]).status == 502)
            #expect(try await gateway.curl("orders", path: "/throttled", extra: ["-X", "POST"]).status == 429)
            #expect(try await gateway.curl("orders", path: "/ok", caller: "api", extra: ["-X", "POST"]).status == 403)
            #expect(try await gateway.curl("orders", path: "/big", extra: ["--data-binary", String(repeating: "a", count: 5000)]).status == 413)

            // A request is counted once its answer's write completes, which the client may see
            // before the gateway's loop runs that callback (a loaded machine can pause it there).
            try await waitUntil("six requests counted") { gateway.scrape().sum("lambda_gateway_requests_total") == 6 }
            let metrics = gateway.scrape()
            let requests = "lambda_gateway_requests_total"
            #expect(metrics.value(requests, ["service": "orders", "status": "201", "outcome": "invoked"]) == 2, "\(metrics.samples)")
            #expect(metrics.value(requests, ["service": "orders", "status": "502", "outcome": "function_error"]) == 1)
            #expect(metrics.value(requests, ["service": "orders", "status": "429", "outcome": "invoke_error"]) == 1)
            #expect(metrics.value(requests, ["service": "orders", "status": "403", "outcome": "denied"]) == 1)
            #expect(metrics.value(requests, ["service": "orders", "status": "413", "outcome": "rejected"]) == 1)
            #expect(metrics.sum(requests) == 6)
            // Every Lambda call is timed, whatever its result; denied and rejected requests made none.
            let calls = "lambda_gateway_lambda_call_duration_seconds"
            #expect(metrics.value(calls + "_count", ["service": "orders"]) == 4)
            #expect(metrics.value(calls + "_bucket", ["service": "orders", "le": "+Inf"]) == 4)
            #expect((metrics.value(calls + "_sum", ["service": "orders"]) ?? 0) > 0)
            #expect(gateway.lambda.requests.count == 4)
            #expect(metrics.value("lambda_gateway_services_served") == 2)
            #expect((metrics.value("lambda_gateway_snapshot_version") ?? 0) > 0)
        }
    }

    @Test func oversizedBodiesGet413WithoutALambdaCall() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let big = try gateway.files.file("big.json", contents: "\"" + String(repeating: "a", count: 6_291_460) + "\"")
            let answer = try await gateway.curl("orders", path: "/upload", extra: ["-H", "content-type: application/json", "--data-binary", "@\(big)"])
            #expect(answer.status == 413 && answer.body.contains("RequestTooLarge"))
            #expect(gateway.lambda.requests.isEmpty)
        }
    }

    @Test func expect100ContinueIsAnsweredOnlyAfterAuthorization() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            gateway.tls.snapshots.consul.setDefaultACLPolicy("deny")
            try gateway.tls.snapshots.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"allow"}]}"#)
            try await gateway.tls.snapshots.waitFor("deny policy") { $0.defaultIntentionPolicy == .deny && $0.services["orders"]?.intentions.count == 1 }
            let body = try gateway.files.file("body.json", contents: "\"" + String(repeating: "b", count: 4096) + "\"")
            // curl would wait 60 s for the go-ahead before sending the body anyway.
            let expecting = ["-H", "Expect: 100-continue", "--expect100-timeout", "60", "-H", "content-type: application/json", "--data-binary", "@\(body)"]
            let allowed = try await gateway.curl("orders", path: "/upload", caller: "web", extra: expecting)
            #expect(allowed.status == 201)
            #expect(allowed.headers.contains("HTTP/1.1 100 Continue"), "\(allowed.headers)")
            #expect(gateway.lambda.requests.count == 1)
            #expect(gateway.lambda.requests.first?.bodyText.contains(String(repeating: "b", count: 4096)) == true)

            let denied = try await gateway.curl("orders", path: "/upload", caller: "api", extra: expecting)
            #expect(denied.status == 403 && denied.body == "RBAC: access denied")
            #expect(!denied.headers.contains("100 Continue"), "\(denied.headers)")
            #expect(gateway.lambda.requests.count == 1)
        }
    }

    @Test func oversizedHeadersGet431AndMalformedRequests400() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            func headers(_ count: Int) -> [String] { (1...count).flatMap { ["-H", "x-h\($0): v"] } }
            // Envoy's limits: at most 100 fields (curl adds Host, User-Agent and Accept) and 60 KiB.
            let most = try await gateway.curl("orders", path: "/many", extra: headers(97))
            let tooMany = try await gateway.curl("orders", path: "/many", extra: headers(98))
            let large = try await gateway.curl("orders", path: "/big", extra: ["-H", "x-big: " + String(repeating: "a", count: 50 * 1024)])
            let tooLarge = try await gateway.curl("orders", path: "/big", extra: ["-H", "x-big: " + String(repeating: "a", count: 61 * 1024)])
            // Not a method llhttp knows: the request line does not parse.
            let malformed = try await gateway.curl("orders", path: "/odd", extra: ["-X", "BAD METHOD"])
            #expect(most.status == 201 && large.status == 201)
            #expect(tooMany.status == 431 && tooLarge.status == 431)
            #expect(malformed.status == 400)
            #expect(gateway.lambda.requests.count == 2)
        }
    }

    @Test func idleConnectionsAreClosedButNotWhileARequestWaits() async throws {
        var settings = ProcessingSettings()
        settings.idleTimeout = .milliseconds(300)
        let slow: TestHTTPServer.Handler = { _ in ScriptedResponse(json: #"{"statusCode":200,"body":"late"}"#, delay: .seconds(1)) }
        try await GatewayFixture.with(settings: settings, lambdaHandler: slow) { gateway in
            #expect(try await gateway.gatewayClosesSilentConnection("orders", alpn: ["http/1.1"], within: .seconds(10)))
            // No ALPN: the gateway waits for the first bytes to tell HTTP/2 from HTTP/1.1; none come.
            #expect(try await gateway.gatewayClosesSilentConnection("orders", alpn: [], within: .seconds(10)))
            try gateway.tls.snapshots.consul.setConfigEntry(ordersDefaults.replacingOccurrences(of: #""Protocol":"http""#, with: #""Protocol":"http2""#))
            try await gateway.tls.snapshots.waitFor("orders is http2") { $0.services["orders"]?.protocolName == "http2" }
            #expect(try await gateway.gatewayClosesSilentConnection("orders", alpn: ["h2"], within: .seconds(10)))
            // A request whose answer takes longer than the idle timeout still gets it.
            let answer = try await gateway.curl("orders", path: "/slow", extra: ["-X", "POST"])
            #expect(answer.status == 200 && answer.body == "late")
        }
    }

    @Test(arguments: ["1.2", "1.3"])
    func aResumedTLSSessionIsServedOnceTheCallerIsCheckedAgain(version: String) async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let leaf = try gateway.tls.clientLeaf("web")
            let cert = try gateway.files.file("resume.pem", contents: try leaf.certificatePEM)
            let key = try gateway.files.file("resume.key", contents: leaf.keyPEM)
            let session = gateway.files.url.appendingPathComponent("session.pem").path
            let flag = version == "1.2" ? "-tls1_2" : "-tls1_3"
            // Envoy sidecars resume sessions; BoringSSL then skips the certificate callback. The
            // answer is waited for, so that TLS 1.3's post-handshake ticket has arrived.
            func call(_ path: String, sessionFlag: String) async throws -> String {
                let request = "GET \(path) HTTP/1.1\\r\\nHost: orders\\r\\nConnection: close\\r\\n\\r\\n"
                return try await ChildProcess.run([
                    "sh", "-c",
                    "(printf '\(request)'; sleep 1) | timeout 10 openssl s_client \(flag) -connect 127.0.0.1:\(gateway.port) -servername \(gateway.tls.sni("orders")) -cert \(cert) -key \(key) \(sessionFlag) \(session) 2>&1",
                ]).stdout
            }
            let first = try await call("/first", sessionFlag: "-sess_out")
            #expect(first.contains("New, TLSv\(version)") && first.contains("HTTP/1.1 201"), "\(first)")
            let resumed = try await call("/resumed", sessionFlag: "-sess_in")
            #expect(resumed.contains("Reused, TLSv\(version)"), "\(resumed)")
            #expect(resumed.contains("HTTP/1.1 201"), "the resumed connection was not served: \(resumed)")
            #expect(gateway.lambda.requests.map { $0.bodyText.contains(#""raw_path":"/resumed""#) }.contains(true))
            #expect(gateway.scrape().sum("lambda_gateway_tls_handshake_failures_total") == 0)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndHTTP10ClosesAfterItsAnswer() async throws {
        let slowFirst: TestHTTPServer.Handler = { request in
            // The first answer takes a while, so the next two wait behind it in the gateway.
            if request.bodyText.contains("/p1") { try? await Task.sleep(for: .milliseconds(300)) }
            return await echoPayload(request)
        }
        try await GatewayFixture.with(lambdaHandler: slowFirst) { gateway in
            let connection = try await RecordingConnection.open(gateway, service: "orders", alpn: ["http/1.1"])
            let host = gateway.tls.sni("orders")
            try await connection.send((1...3).map { "GET /p\($0) HTTP/1.1\r\nHost: \(host)\r\n\r\n" }.joined())
            let received = try await connection.waitForReceived { $0.components(separatedBy: "HTTP/1.1 201 Created\r\n").count == 4 }
            let positions = (1...3).compactMap { received.range(of: "/p\($0)")?.lowerBound }
            #expect(positions.count == 3 && positions == positions.sorted(), "answers out of order: \(received)")
            #expect(gateway.accepted.load(ordering: .relaxed) == 1)
            // HTTP/1.0 without keep-alive: answered with its own version, then the gateway closes.
            try await connection.send("GET /last HTTP/1.0\r\nHost: \(host)\r\n\r\n")
            #expect(await connection.closedByGateway(within: .seconds(5)))
            #expect(connection.received.contains("HTTP/1.0 201 Created\r\n"))
            #expect(connection.received.contains("connection: close"))
            #expect(gateway.lambda.requests.count == 4)
        }
    }

    @Test func largeBodiesCrossBothConnectionsIntact() async throws {
        // Over the 16 KiB below which head and body share one buffer, both ways.
        let body = String((0..<120_000).map { _ in "abcdefghij".randomElement()! }) + "END"
        let sizeEcho: TestHTTPServer.Handler = { request in
            let received = request.body.count
            return ScriptedResponse(json: #"{"statusCode":200,"body":"\#(String(repeating: "z", count: 100_000))|\#(received)"}"#)
        }
        try await GatewayFixture.with(lambdaHandler: sizeEcho) { gateway in
            let file = try gateway.files.file("big.txt", contents: body)
            let answer = try await gateway.curl("orders", path: "/big", extra: ["-H", "content-type: text/plain", "--data-binary", "@\(file)"])
            #expect(answer.status == 200)
            let parts = answer.body.split(separator: "|")
            #expect(parts.first?.count == 100_000 && parts.first?.allSatisfy { $0 == "z" } == true)
            // The Invoke payload carried the whole body (Envoy JSON: at least its bytes).
            #expect((parts.last.flatMap { Int($0) } ?? 0) > 120_000)
            #expect(gateway.lambda.requests.first?.bodyText.contains("END") == true)
            #expect(answer.headers.lowercased().contains("content-length: \(answer.body.utf8.count)\r\n"), "\(answer.headers)")
        }
    }

    @Test func aFunctionsHeaderCannotSplitTheResponse() async throws {
        let injecting: TestHTTPServer.Handler = { _ in
            ScriptedResponse(json: #"{"statusCode":200,"headers":{"x-evil":"a\r\nset-cookie: injected=1","x-fine":"b"},"body":"ok"}"#)
        }
        try await GatewayFixture.with(lambdaHandler: injecting) { gateway in
            let answer = try await gateway.curl("orders", path: "/")
            #expect(answer.status == 200 && answer.body == "ok")
            #expect(answer.headers.lowercased().contains("x-fine: b"))
            #expect(!answer.headers.lowercased().contains("injected"), "\(answer.headers)")
        }
    }

    @Test func keepAliveReusesTheConnection() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let host = gateway.tls.sni("orders")
            let answer = try await gateway.curl("orders", path: "/a", extra: ["-o", "/dev/null", "https://\(host):\(gateway.port)/b", "-o", "/dev/null", "https://\(host):\(gateway.port)/c"])
            #expect(answer.status == 201)
            #expect(gateway.lambda.requests.count == 3)
            #expect(gateway.accepted.load(ordering: .relaxed) == 1, "three requests should share one kept-alive connection")
        }
    }
}

@Suite("HTTP/2 through the gateway", .serialized)
struct HTTP2GatewayTests {
    func makeOrdersHTTP2(_ gateway: GatewayFixture) async throws {
        try gateway.tls.snapshots.consul.setConfigEntry(ordersDefaults.replacingOccurrences(of: #""Protocol":"http""#, with: #""Protocol":"http2""#))
        try await gateway.tls.snapshots.waitFor("orders is http2") { $0.services["orders"]?.protocolName == "http2" }
    }

    @Test func h2ByALPNWithConcurrentStreams() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            try await makeOrdersHTTP2(gateway)
            let host = gateway.tls.sni("orders")
            var extra = ["--http2", "-H", "content-type: application/json", "-d", "{}", "--parallel", "--parallel-immediate"]
            for index in 1...5 { extra += ["-o", "/dev/null", "https://\(host):\(gateway.port)/p\(index)"] }
            let answer = try await gateway.curl("orders", path: "/p0", extra: extra)
            #expect(answer.status == 201, "\(answer)")
            #expect(answer.headers.components(separatedBy: "HTTP/2 201").count - 1 == 6, "\(answer.headers)")
            #expect(gateway.lambda.requests.count == 6)
            let payload = try #require(gateway.lambda.requests.first?.bodyText)
            #expect(payload.contains(#""raw_path":"/p"#))
        }
    }

    @Test func theCallersB3TraceReachesTheFunction() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            try await makeOrdersHTTP2(gateway)
            let answer = try await gateway.curl("orders", path: "/b3", extra: ["--http2", "-H", "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"])
            #expect(answer.status == 201 && answer.headers.hasPrefix("HTTP/2"), "\(answer)")
            #expect(gateway.lambda.requests.first?.header("x-amzn-trace-id") == "Root=1-80f198ee-56343ba864fe8b2a57d3eff7;Parent=e457b5a2e4d86bd1;Sampled=1")
        }
    }

    @Test func h2WithPriorKnowledgeAndNoALPN() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            try await makeOrdersHTTP2(gateway)
            let answer = try await gateway.curl("orders", path: "/prior", extra: ["--http2-prior-knowledge", "--no-alpn", "-H", "content-type: application/json", "-d", #"{"k":1}"#])
            #expect(answer.status == 201, "\(answer)")
            #expect(answer.headers.hasPrefix("HTTP/2"), "\(answer.headers)")
        }
    }

    @Test func h2RequestsWithMoreThan100HeaderFieldsGet431() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            try await makeOrdersHTTP2(gateway)
            func headers(_ count: Int) -> [String] { ["--http2"] + (1...count).flatMap { ["-H", "x-h\($0): v"] } }
            // curl adds user-agent and accept; :authority becomes host.
            let most = try await gateway.curl("orders", path: "/many", extra: headers(97))
            let tooMany = try await gateway.curl("orders", path: "/many", extra: headers(98))
            #expect(most.status == 201 && most.headers.hasPrefix("HTTP/2"), "\(most.headers)")
            #expect(tooMany.status == 431 && tooMany.body.contains("RequestHeaderFieldsTooLarge"), "\(tooMany)")
            #expect(gateway.lambda.requests.count == 1)
        }
    }

    @Test func http1WithoutALPNIsDetectedToo() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let answer = try await gateway.curl("orders", path: "/plain", extra: ["--no-alpn", "-X", "POST"])
            #expect(answer.status == 201, "\(answer)")
            #expect(answer.headers.hasPrefix("HTTP/1.1"))
        }
    }
}

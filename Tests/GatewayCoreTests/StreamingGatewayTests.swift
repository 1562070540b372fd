import AWSCredentials
import DevMode
import Foundation
import GatewayCore
import LambdaInvoke
import Logging
import NIOCore
import NIOPosix
import TestSupport
import Testing

/// Response streaming through the whole path: Consul test server (a service in `RESPONSE_STREAM`
/// mode) → mTLS listener → `InvokeWithResponseStream`, signed and checked by dev mode's Lambda
/// endpoint, whose `countdown` function writes its events over time → curl as the caller.
struct StreamingFixture {
    let tls: TLSFixture
    let files: TemporaryDirectory
    let port: Int
    let metrics: GatewayMetrics
    let invoker: LambdaInvokeClient
    /// The access log's file (Consul's default JSON format).
    let accessLogPath: String

    static func with(settings: ProcessingSettings = ProcessingSettings(), _ body: (StreamingFixture) async throws -> Void) async throws {
        try await TLSFixture.with { tls in
            let consul = tls.snapshots.consul
            let files = try TemporaryDirectory()
            let accessLogPath = files.url.appendingPathComponent("access.log").path
            try consul.setConfigEntry(#"{"Kind":"proxy-defaults","Name":"global","AccessLogs":{"Enabled":true,"Type":"file","Path":"\#(accessLogPath)"}}"#)
            consul.registerInstance("events")
            try consul.setConfigEntry(
                #"{"Kind":"service-defaults","Name":"events","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:countdown","InvokeMode":"RESPONSE_STREAM"}}]}"#
            )
            try consul.linkServices(["orders", "thumbnails", "events"])
            try await tls.snapshots.waitFor("the streamed service") { $0.services["events"]?.lambda.invokeMode == .responseStream && $0.accessLogs != nil }
            let lambda = try await DevLambdaEndpoint.bind(group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "lambda"))
            let invoker = try LambdaInvokeClient(
                configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(customEndpoint: lambda.url)),
                credentials: StaticCredentialSource(DevLambdaEndpoint.credentials),
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                logger: Logger(label: "invoke")
            )
            let metrics = GatewayMetrics()
            let accessLog = AccessLog(store: tls.snapshots.store, hangups: nil, metrics: metrics, logger: Logger(label: "access-log"))
            let processor = RequestProcessor(
                store: tls.snapshots.store, invoker: invoker, settings: settings, metrics: metrics, accessLog: accessLog, logger: Logger(label: "gateway")
            )
            let acceptor = MeshTLSAcceptor(store: tls.snapshots.store, metrics: metrics, logger: Logger(label: "tls"))
            let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in acceptor.configure(channel) { channel, connection in processor.configureHTTP(channel, connection: connection) } }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            let fixture = StreamingFixture(tls: tls, files: files, port: listener.localAddress!.port!, metrics: metrics, invoker: invoker, accessLogPath: accessLogPath)
            try await withTeardown {
                try await body(fixture)
            } teardown: {
                try? await listener.close()
                try? await invoker.shutdown()
                await lambda.close()
                files.remove()
            }
        }
    }

    struct Answer {
        /// curl's exit status: 0, 18 (HTTP/1.1 ended before its last chunk), 92 (HTTP/2 stream reset), 28 (timed out).
        var exit: Int32
        var status: Int
        var headers: String
        var body: String
        /// When each piece of the body arrived (curl's trace), in seconds since midnight, with its text.
        var arrivals: [(time: Double, text: String)]

        /// When the first piece containing `text` arrived.
        func arrival(of text: String) -> Double? { arrivals.first { $0.text.contains(text) }?.time }
    }

    /// curl -N as a mesh caller of `events`, with a trace of when each piece of the body arrived.
    func curl(_ path: String, httpVersion: String = "--http1.1", extra: [String] = []) async throws -> Answer {
        let leaf = try tls.clientLeaf("web")
        let cert = try files.file("web.pem", contents: try leaf.certificatePEM)
        let key = try files.file("web.key", contents: leaf.keyPEM)
        let host = tls.sni("events")
        let headersFile = files.url.appendingPathComponent("headers-\(UUID().uuidString)").path
        let traceFile = files.url.appendingPathComponent("trace-\(UUID().uuidString)").path
        let bodyFile = files.url.appendingPathComponent("body-\(UUID().uuidString)").path
        let output = try await ChildProcess.run(
            [
                "curl", "-sS", "-N", "-k", httpVersion, "--cert", cert, "--key", key, "--resolve", "\(host):\(port):127.0.0.1", "-D", headersFile, "-o", bodyFile,
                "--trace-ascii", traceFile, "--trace-time", "-w", "%{http_code}",
            ] + extra + ["https://\(host):\(port)\(path)"]
        )
        let trace = (try? String(contentsOfFile: traceFile, encoding: .utf8)) ?? ""
        return Answer(
            exit: output.status, status: Int(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
            headers: ((try? String(contentsOfFile: headersFile, encoding: .utf8)) ?? "").lowercased(),
            body: (try? String(contentsOfFile: bodyFile, encoding: .utf8)) ?? "", arrivals: Self.arrivals(in: trace)
        )
    }

    /// `HH:MM:SS.ffffff <= Recv data, N bytes` and the dump lines after it, as (time, text).
    static func arrivals(in trace: String) -> [(time: Double, text: String)] {
        var result: [(Double, String)] = []
        var current: (Double, String)?
        for line in trace.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].filter({ $0 == ":" }).count == 2, let time = Self.seconds(parts[0]) {
                if let current { result.append(current) }
                current = parts[1].hasPrefix("<= Recv data") ? (time, "") : nil
            } else if current != nil, let colon = line.firstIndex(of: ":") {
                current!.1 += line[line.index(after: colon)...].dropFirst()
            }
        }
        if let current { result.append(current) }
        return result
    }

    static func seconds(_ text: Substring) -> Double? {
        let fields = text.split(separator: ":")
        guard fields.count == 3, let hours = Double(fields[0]), let minutes = Double(fields[1]), let seconds = Double(fields[2]) else { return nil }
        return hours * 3600 + minutes * 60 + seconds
    }

    /// The access log's lines (JSON objects) once it has `count`.
    func accessLogLines(_ count: Int) async throws -> [[String: Any]] {
        var lines: [[String: Any]] = []
        try await waitUntil("\(count) access-log lines") {
            let text = (try? String(contentsOfFile: accessLogPath, encoding: .utf8)) ?? ""
            lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return lines.count >= count
        }
        return lines
    }

    func scrape() -> PrometheusText {
        PrometheusText(metrics.exposition(snapshot: tls.snapshots.store.snapshot, inFlight: 0))
    }
}

@Suite("Streamed answers through the gateway, driven by curl", .serialized)
struct StreamingGatewayTests {
    @Test(arguments: ["--http1.1", "--http2"])
    func eventsReachTheCallerAsTheFunctionWritesThem(_ httpVersion: String) async throws {
        try await StreamingFixture.with { gateway in
            let answer = try await gateway.curl("/events?n=3&delay_ms=600", httpVersion: httpVersion)
            #expect(answer.exit == 0 && answer.status == 200)
            #expect(answer.body == "data: tick 1 of 3\n\ndata: tick 2 of 3\n\ndata: tick 3 of 3\n\n")
            // The head is the prelude's, which came in two pieces cut inside its NULs.
            #expect(answer.headers.contains("content-type: text/event-stream") && answer.headers.contains("x-dev-function: countdown"))
            #expect(answer.headers.contains("x-amzn-requestid: "))
            #expect(!answer.headers.contains("content-length"))
            if httpVersion == "--http1.1" { #expect(answer.headers.contains("transfer-encoding: chunked")) }
            // The function pauses 600 ms before each event: the first reached the caller about
            // 1.2 s before the last one was written. A gateway that buffered would deliver them together.
            let first = try #require(answer.arrival(of: "tick 1 of 3"), "\(answer.arrivals)")
            let last = try #require(answer.arrival(of: "tick 3 of 3"))
            #expect(last - first >= 0.8, "tick 1 at \(first), tick 3 at \(last)")
            // Counted once the last part's write completes, which curl may see first.
            try await waitUntil("the stream is counted") {
                gateway.scrape().value("lambda_gateway_streamed_responses_total", ["service": "events", "result": "complete"]) != nil
            }
            let metrics = gateway.scrape()
            #expect(metrics.value("lambda_gateway_streamed_responses_total", ["service": "events", "result": "complete"]) == 1)
            #expect(metrics.value("lambda_gateway_streamed_response_bytes_total", ["service": "events"]) == Double(answer.body.utf8.count))
        }
    }

    /// A function failure, Lambda going away, or a corrupt frame after the head: the caller sees an
    /// incomplete response (curl 18: the last chunk never came; curl 92: the stream was reset),
    /// never a complete one, and keeps what came before.
    @Test(arguments: ["--http1.1", "--http2"])
    func aStreamThatBreaksOffIsAnIncompleteResponse(_ httpVersion: String) async throws {
        try await StreamingFixture.with { gateway in
            for breaking in ["fail_after", "abort_after", "corrupt_after"] {
                let answer = try await gateway.curl("/events?n=3&delay_ms=50&\(breaking)=2", httpVersion: httpVersion)
                #expect(answer.exit == (httpVersion == "--http2" ? 92 : 18), "\(breaking): curl exit \(answer.exit)")
                #expect(answer.status == 200)
                #expect(answer.body == "data: tick 1 of 3\n\ndata: tick 2 of 3\n\n", "\(breaking)")
            }
            try await waitUntil("the three are counted") { gateway.scrape().value("lambda_gateway_streamed_responses_total", ["service": "events", "result": "incomplete"]) == 3 }
            let metrics = gateway.scrape()
            #expect(metrics.value("lambda_gateway_streamed_responses_total", ["service": "events", "result": "incomplete"]) == 3)
            // The access log says how each broke, with the bytes that did go out.
            let lines = try await gateway.accessLogLines(3)
            #expect(
                lines.map { $0["response_code_details"] as? String } == [
                    "lambda_function_error_after_response_started", "upstream_reset_after_response_started{connection_termination}",
                    "upstream_reset_after_response_started{connection_termination}",
                ])
            #expect(lines.map { $0["response_flags"] as? String } == ["-", "UC", "UC"])
            #expect(lines.allSatisfy { $0["response_code"] as? Int == 200 && $0["bytes_sent"] as? Int == 38 })
            #expect(metrics.value("lambda_gateway_requests_total", ["service": "events", "status": "200", "outcome": "function_error"]) == 1)
            #expect(metrics.value("lambda_gateway_requests_total", ["service": "events", "status": "200", "outcome": "invoke_error"]) == 2)
            #expect(metrics.value("lambda_gateway_lambda_errors_total", ["service": "events", "error_type": "Unhandled"]) == 1)
        }
    }

    /// HTTP/1.0 has no chunks: the body ends with the connection, closed normally when it is
    /// complete, and reset when it broke, which the client reports as an error.
    @Test func anHTTP10StreamEndsWithTheConnectionAndABrokenOneWithAReset() async throws {
        try await StreamingFixture.with { gateway in
            let complete = try await gateway.curl("/events?n=2&delay_ms=0", httpVersion: "--http1.0")
            #expect(complete.exit == 0 && complete.status == 200 && complete.body == "data: tick 1 of 2\n\ndata: tick 2 of 2\n\n")
            #expect(!complete.headers.contains("transfer-encoding") && complete.headers.contains("connection: close"))
            let broken = try await gateway.curl("/events?n=3&delay_ms=0&fail_after=2", httpVersion: "--http1.0")
            #expect(broken.exit == 56, "curl took a cut stream for a complete one: exit \(broken.exit)")
            #expect(broken.body == "data: tick 1 of 3\n\ndata: tick 2 of 3\n\n")
        }
    }

    /// A caller that leaves before the function's first byte cancels the call: its stream slot is
    /// free long before the function would have written (5 s here), not held for nobody.
    @Test func aCallerThatLeavesBeforeTheFirstByteCancelsTheCall() async throws {
        try await StreamingFixture.with { gateway in
            let answer = try await gateway.curl("/events?n=1&prelude=0&wait_ms=5000", extra: ["--max-time", "1"])
            #expect(answer.exit == 28)
            try await waitUntil("the call is cancelled", timeout: .seconds(3)) { gateway.invoker.streamsInProgress == 0 }
        }
    }

    /// HTTP/2: a stream the caller resets before the function's first byte cancels its call; the
    /// connection and its other streams go on.
    @Test func anHTTP2StreamResetBeforeTheFirstByteCancelsItsCall() async throws {
        try await StreamingFixture.with { gateway in
            let host = gateway.tls.sni("events")
            let connection = try await RawConnection.open(tls: gateway.tls, port: gateway.port, service: "events", alpn: ["h2"])
            defer { Task { await connection.close() } }
            try await connection.send(RawH2.start() + RawH2.request(stream: 1, path: "/events?n=1&prelude=0&wait_ms=5000", authority: host))
            try await waitUntil("the call is made") { gateway.invoker.streamsInProgress == 1 }
            try await connection.send(RawH2.frame(.rstStream, stream: 1, [0, 0, 0, 8]))  // CANCEL
            try await waitUntil("the call is cancelled", timeout: .seconds(3)) { gateway.invoker.streamsInProgress == 0 }
            try await connection.send(RawH2.request(stream: 3, path: "/events?n=1&delay_ms=0", authority: host))
            let answer = try await connection.waitFor { RawH2.responses(in: $0)[3]?.ended == true }
            #expect(RawH2.responses(in: answer)[3]?.status == 200)
        }
    }

    @Test func withoutAPreludeTheFunctionsBytesAreTheBodyAndAFailureBeforeThemIsA502() async throws {
        try await StreamingFixture.with { gateway in
            let ownType = try await gateway.curl("/events?n=2&delay_ms=0&type=text/plain")
            #expect(ownType.exit == 0 && ownType.status == 200 && ownType.headers.contains("content-type: text/plain"))
            #expect(ownType.body == "data: tick 1 of 2\n\ndata: tick 2 of 2\n\n")
            let bytes = try await gateway.curl("/events?n=3&delay_ms=0&size=5", httpVersion: "--http2")
            #expect(bytes.exit == 0 && bytes.headers.contains("content-type: application/octet-stream") && bytes.body == "aaaaabbbbbccccc")
            let early = try await gateway.curl("/events?prelude=0&fail_after=0")
            #expect(early.exit == 0 && early.status == 502)
            #expect(early.headers.contains("x-amz-function-error: unhandled") && early.body.contains("Unhandled"))
            let head = try await gateway.curl("/events?n=3&delay_ms=0", extra: ["-I"])
            #expect(head.exit == 0 && head.status == 200 && head.headers.contains("content-type: text/event-stream"))
        }
    }

    /// A caller that reads slowly slows the stream: the gateway reads from Lambda only while the
    /// connection's answer budget has room, so what it holds stays near that limit however long
    /// the answer (64 MiB here, ~300 KB of it read in the test's 3 s), and the call is cancelled
    /// when the caller leaves.
    @Test(arguments: ["--http1.1", "--http2"])
    func aSlowCallerSlowsReadingFromLambdaInsteadOfGrowingMemory(_ httpVersion: String) async throws {
        var settings = ProcessingSettings()
        settings.connectionBufferLimit = 256 * 1024
        settings.sendTimeout = .seconds(60)
        try await StreamingFixture.with(settings: settings) { gateway in
            gateway.metrics.resetHeldAnswerBytesPeak()
            let answer = try await gateway.curl("/events?n=1024&size=65536&delay_ms=0", httpVersion: httpVersion, extra: ["--limit-rate", "100K", "--max-time", "3"])
            #expect(answer.exit == 28, "curl gave up after 3 s, as asked")
            let peak = gateway.metrics.heldAnswerBytes.peak
            #expect(peak > 0 && peak <= 256 * 1024 + 512 * 1024, "the gateway held \(peak) bytes of a 64 MiB answer")
            try await waitUntil("the abandoned stream is counted") {
                gateway.scrape().value("lambda_gateway_streamed_responses_total", ["service": "events", "result": "incomplete"]) == 1
            }
        }
    }
}

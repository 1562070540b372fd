import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Consul's `AccessLogs` on a running gateway (docs/COMPATIBILITY.md, `AccessLogs`): served by the Consul API test
/// server's `proxy-defaults`, applied live, written for real requests over mTLS (curl, HTTP/1.1 and
/// HTTP/2), reopened on SIGHUP; and `/metrics` checked by promtool.
@Suite("access log and /metrics of a running gateway", .serialized)
struct AccessLogRunTests {
    /// The Lambda stand-in: `hello` for every call, 429 for a payload that asks to be throttled.
    static let lambda: TestHTTPServer.Handler = { request in
        if request.bodyText.contains("/drop") {
            return ScriptedResponse(behaviour: .closeWithoutResponse)
        }
        if request.bodyText.contains("/throttle") {
            return ScriptedResponse(status: 429, json: #"{"__type":"TooManyRequestsException","message":"Rate exceeded","Reason":"CallerRateLimitExceeded"}"#)
        }
        return ScriptedResponse(json: #"{"statusCode":200,"headers":{"content-type":"text/plain"},"body":"hello"}"#)
    }

    static func setAccessLogs(_ consul: ConsulTestServer, _ fields: String) throws {
        try consul.setConfigEntry(#"{"Kind":"proxy-defaults","Name":"global","AccessLogs":{"# + fields + "}}")
    }

    /// `count` lines of `path` once it has them.
    static func lines(_ path: String, count: Int, timeout: Duration = .seconds(10)) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        var found: [String] = []
        while ContinuousClock.now < deadline {
            // Complete lines only: the writer may be half-way through one.
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            found = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
            if found.count >= count { return found }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSupportError("\(path) has \(found.count) lines, not \(count): \(found)")
    }

    /// Waits until the gateway's output has `count` lines containing `text`.
    static func waitForOutput(_ process: RunningProcess, _ text: String, count: Int = 1) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while process.output.filter({ $0.contains(text) }).count < count {
            guard ContinuousClock.now < deadline else {
                throw TestSupportError("no \(count)x \"\(text)\" in the gateway's output: \(process.output.suffix(15).joined(separator: "\n"))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func curl(_ process: GatewayProcess, _ extra: [String], path: String) async throws -> ChildProcess.Output {
        try await ChildProcess.run(
            [
                "curl", "-sS", "-k", "--cert", process.clientCertificate, "--key", process.clientKey, "--resolve", "\(GatewayProcess.sni):\(process.listenPort):127.0.0.1",
                "-w", "\n%{http_code}",
            ] + extra + ["https://\(GatewayProcess.sni):\(process.listenPort)\(path)"]
        )
    }

    @Test func consulsDefaultFormatKeyForKeyForHTTP1AndHTTP2AndTheGatewaysOwnAnswers() async throws {
        try await GatewayProcess.with(lambdaHandler: Self.lambda, arguments: ["--register", "none", "--log-format", "json"]) { process in
            let log = process.files.url.appendingPathComponent("access.log").path
            try Self.setAccessLogs(process.consul, #""Enabled":true,"Type":"file","Path":"\#(log)""#)
            try await Self.waitForOutput(process.gateway, "access log on")

            #expect(try await curl(process, ["--http1.1", "-H", "user-agent: probe/1", "-H", "x-request-id: r-1", "-d", "{\"n\":1}"], path: "/hello?x=1").stdout == "hello\n200")
            #expect(try await curl(process, ["--http2"], path: "/two").stdout == "hello\n200")
            #expect(try await curl(process, ["--http1.1", "-X", "CONNECT"], path: "/").stdout.hasSuffix("405"))
            #expect(try await curl(process, ["--http1.1"], path: "/throttle").stdout.hasSuffix("429"))
            let lines = try await Self.lines(log, count: 4)

            // Keys in Consul's order, every one present, typed as Envoy types them.
            let keys = [
                "start_time", "route_name", "method", "path", "protocol", "response_code", "response_flags", "response_code_details",
                "connection_termination_details", "bytes_received", "bytes_sent", "duration", "upstream_service_time", "x_forwarded_for",
                "user_agent", "request_id", "authority", "upstream_host", "upstream_cluster", "upstream_local_address",
                "downstream_local_address", "downstream_remote_address", "requested_server_name", "upstream_transport_failure_reason",
            ]
            let positions = keys.map { lines[0].range(of: "\"\($0)\":")?.lowerBound }
            #expect(positions.allSatisfy { $0 != nil } && positions.map { $0! } == positions.map { $0! }.sorted(), "\(lines[0])")
            let objects = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(objects.allSatisfy { Set($0.keys) == Set(keys) })

            let first = objects[0]
            #expect(first["method"] as? String == "POST" && first["path"] as? String == "/hello?x=1" && first["protocol"] as? String == "HTTP/1.1")
            #expect(first["response_code"] as? Int == 200 && first["response_flags"] as? String == "-" && first["response_code_details"] as? String == "via_upstream")
            #expect(first["bytes_received"] as? Int == 7 && first["bytes_sent"] as? Int == 5)
            #expect((first["duration"] as? Int).map { $0 >= 0 } == true && first["upstream_service_time"] is Int, "\(lines[0])")
            #expect(first["user_agent"] as? String == "probe/1" && first["request_id"] as? String == "r-1")
            #expect(first["authority"] as? String == "\(GatewayProcess.sni):\(process.listenPort)")
            #expect(first["upstream_host"] as? String == "127.0.0.1:\(process.lambda.port)" && first["upstream_cluster"] as? String == "orders")
            #expect(first["downstream_local_address"] as? String == "127.0.0.1:\(process.listenPort)")
            #expect((first["downstream_remote_address"] as? String)?.hasPrefix("127.0.0.1:") == true)
            #expect(first["requested_server_name"] as? String == GatewayProcess.sni)
            #expect(first["route_name"] is NSNull && first["x_forwarded_for"] is NSNull)
            // The gateway's end of its connection to Lambda, for a result and for an AWS error answer.
            let local = try #require(first["upstream_local_address"] as? String)
            #expect(local.hasPrefix("127.0.0.1:") && local != first["upstream_host"] as? String && Int(local.dropFirst(10)) != nil, "\(local)")
            #expect(Self.isRFC3339Milliseconds(first["start_time"] as? String), "\(first["start_time"] ?? "nil")")

            #expect(objects[1]["protocol"] as? String == "HTTP/2" && objects[1]["method"] as? String == "GET" && objects[1]["response_code"] as? Int == 200)
            #expect(objects[2]["response_code"] as? Int == 405 && objects[2]["response_code_details"] as? String == "rejected{MethodNotAllowed}")
            #expect(objects[2]["upstream_service_time"] is NSNull && objects[2]["upstream_host"] is NSNull && objects[2]["upstream_local_address"] is NSNull)
            #expect(objects[3]["response_code"] as? Int == 429 && objects[3]["response_code_details"] as? String == "lambda_throttled")
            #expect((objects[3]["upstream_local_address"] as? String)?.hasPrefix("127.0.0.1:") == true)

            // --log-format json: the gateway's own lines are JSON objects too.
            let own = process.gateway.output.filter { $0.hasPrefix("{") }
            #expect(own.contains { $0.contains("\"message\":\"access log on\"") })
            for line in own { #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "\(line)") }

            // /metrics: promtool finds nothing to say, and the new families are there.
            // Counted once each answer's write completed and each line was written: curl and the
            // file can show them first.
            let metrics = try await process.metrics(until: "four requests and four lines") {
                $0.value("lambda_gateway_request_duration_seconds_count", ["service": "orders"]) == 4 && $0.value("lambda_gateway_access_log_lines_total") == 4
            }
            let file = try process.files.file("metrics.txt", contents: String(metrics.dropLast(3)))
            let lint = try await ChildProcess.run(["sh", "-c", "promtool check metrics < \(file)"])
            #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "\(lint.stdout)\(lint.stderr)")
            let samples = PrometheusText(metrics)
            #expect(samples.value("lambda_gateway_request_duration_seconds_count", ["service": "orders"]) == 4)
            #expect(samples.value("lambda_gateway_lambda_errors_total", ["service": "orders", "error_type": "TooManyRequestsException"]) == 1)
            #expect(samples.value("lambda_gateway_access_log_lines_total") == 4)
            #expect(samples.value("lambda_gateway_upstream_tls_handshakes_total", ["result": "success"]).map { $0 >= 1 } == true)
            #expect(samples.value("lambda_gateway_credential_refreshes_total") == 1)
            #expect(samples.value("lambda_gateway_consul_watch_staleness_seconds", ["watch": "/v1/agent/connect/ca/roots"]).map { $0 < 60 } == true)
            #expect(samples.value("lambda_gateway_leaf_certificate_expiry_seconds", ["service": "orders"]).map { $0 > 0 } == true)
            #expect(samples.value("process_resident_memory_bytes").map { $0 > 0 } == true)
            // Every family the shipped dashboard and rules rely on (scripts/check_dashboard.py) is exposed.
            for family in try Self.contractFamilies() where family != "lambda_gateway_consul_watch_errors_total" {
                #expect(metrics.contains("# TYPE \(family) "), "\(family) is not on /metrics")
            }
        }
    }

    @Test func aTextFormatWithTheCallersIdentityAppliesLiveAndABadChangeKeepsIt() async throws {
        try await GatewayProcess.with(lambdaHandler: Self.lambda) { process in
            let log = process.files.url.appendingPathComponent("text.log").path
            try Self.setAccessLogs(
                process.consul, #""Enabled":true,"Type":"file","Path":"\#(log)","TextFormat":"%REQ(:METHOD)% %RESPONSE_CODE% %DOWNSTREAM_PEER_URI_SAN% %RESPONSE_FLAGS% %REQ(X-NOTE)%""#)
            try await Self.waitForOutput(process.gateway, "access log on")
            #expect(try await curl(process, ["-H", "x-note: a\u{1b}[2Jb"], path: "/").stdout.hasSuffix("200"))
            #expect(try await Self.lines(log, count: 1) == ["GET 200 spiffe://\(GatewayProcess.trustDomain)/ns/default/dc/dc1/svc/web - a\\x1b[2Jb"])

            // Both formats: Consul would refuse it; the gateway keeps the previous setting and says why.
            try Self.setAccessLogs(process.consul, #""Enabled":true,"Type":"file","Path":"\#(log)","TextFormat":"%RESPONSE_CODE%","JSONFormat":"{\"c\":\"%RESPONSE_CODE%\"}""#)
            try await Self.waitForOutput(process.gateway, "AccessLogs sets both JSONFormat and TextFormat")
            // An operator the gateway does not know: refused as a whole, named.
            try Self.setAccessLogs(process.consul, #""Enabled":true,"Type":"file","Path":"\#(log)","TextFormat":"%RESPONSE_CODE% %BOGUS_OPERATOR%""#)
            try await Self.waitForOutput(process.gateway, "%BOGUS_OPERATOR%")
            #expect(try await curl(process, [], path: "/").stdout.hasSuffix("200"))
            #expect(try await Self.lines(log, count: 2).last == "GET 200 spiffe://\(GatewayProcess.trustDomain)/ns/default/dc/dc1/svc/web - -")

            // A connection refused before any request: a listener line, flag NR.
            let unknown = "nobody.default.dc1.internal.\(GatewayProcess.trustDomain)"
            try Self.setAccessLogs(process.consul, #""Enabled":true,"Type":"file","Path":"\#(log)","TextFormat":"%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %REQUESTED_SERVER_NAME%""#)
            try await Self.waitForOutput(process.gateway, "access log on", count: 2)
            _ = try? await ChildProcess.run(["curl", "-sS", "-k", "--resolve", "\(unknown):\(process.listenPort):127.0.0.1", "https://\(unknown):\(process.listenPort)/"])
            #expect(try await Self.lines(log, count: 3).last == "0 NR filter_chain_not_found \(unknown)")

            // Requests sent to Lambda: one, or two when the gateway retried a throttled call.
            // And a connection to Lambda lost before its answer: flag UC and why.
            try Self.setAccessLogs(
                process.consul,
                #""Enabled":true,"Type":"file","Path":"\#(log)","TextFormat":"%REQ(:PATH)% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %RESPONSE_FLAGS% %UPSTREAM_TRANSPORT_FAILURE_REASON% %TRACE_ID%""#
            )
            try await Self.waitForOutput(process.gateway, "access log on", count: 3)
            #expect(try await curl(process, ["-H", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"], path: "/once").stdout.hasSuffix("200"))
            #expect(try await curl(process, [], path: "/throttle").stdout.hasSuffix("429"))
            #expect(try await curl(process, [], path: "/drop").stdout.hasSuffix("502"))
            let attempts = try await Self.lines(log, count: 6).suffix(3).map { $0 }
            // And the caller's trace id (%TRACE_ID%), when it sent one.
            #expect(attempts.prefix(2) == ["/once 1 - - 4bf92f3577b34da6a3ce929d0e0e4736", "/throttle 2 URX - -"], "\(attempts)")
            #expect(attempts.last?.hasPrefix("/drop 1 UC ") == true && attempts.last?.hasSuffix(" - -") == false && attempts.last?.hasSuffix(" -") == true, "\(attempts)")

            // Disabled: no more lines. The request is counted first: its line would have been handed
            // to the writer then. No event says the writer has nothing: a short look.
            try Self.setAccessLogs(process.consul, #""Enabled":false"#)
            try await Self.waitForOutput(process.gateway, "access log off")
            let requests = { (metrics: PrometheusText) in metrics.value("lambda_gateway_request_duration_seconds_count", ["service": "orders"]) ?? 0 }
            let before = PrometheusText(try await process.admin("/metrics").stdout)
            #expect(try await curl(process, [], path: "/").stdout.hasSuffix("200"))
            try await process.metrics(until: "the request made while the log is off") { requests($0) == requests(before) + 1 }
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await Self.lines(log, count: 6).count == 6)
            let after = PrometheusText(try await process.admin("/metrics").stdout)
            #expect(after.value("lambda_gateway_access_log_lines_total") == 6)
        }
    }

    @Test func sighupReopensTheMovedFileAndNeverStopsAGatewayFollowingConsul() async throws {
        try await GatewayProcess.with(lambdaHandler: Self.lambda) { process in
            let log = process.files.url.appendingPathComponent("access.log").path
            try Self.setAccessLogs(process.consul, #""Enabled":true,"Type":"file","Path":"\#(log)","TextFormat":"%REQ(:PATH)%""#)
            try await Self.waitForOutput(process.gateway, "access log on")
            #expect(try await curl(process, [], path: "/before").stdout.hasSuffix("200"))
            #expect(try await Self.lines(log, count: 1) == ["/before"])
            try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
            process.gateway.signal(SIGHUP)
            try await Self.waitForOutput(process.gateway, "SIGHUP received")
            #expect(try await curl(process, [], path: "/after").stdout.hasSuffix("200"))
            #expect(try await Self.lines(log, count: 1) == ["/after"])
            #expect(try String(contentsOfFile: log + ".1", encoding: .utf8) == "/before\n")
            process.gateway.signal(SIGHUP)
            try await Self.waitForOutput(process.gateway, "SIGHUP received", count: 2)
            #expect(try await process.admin("/live").stdout.hasSuffix("200"))
        }
    }

    @Test func aSinkNobodyReadsNeitherSlowsNorFailsRequestsAndItsDropsAreCounted() async throws {
        try await GatewayProcess.with(lambdaHandler: Self.lambda, arguments: ["--register", "none", "--access-log-buffer-lines", "8"]) { process in
            let fifo = process.files.url.appendingPathComponent("fifo").path
            #expect(mkfifo(fifo, 0o600) == 0)
            // No reader at all: the writer's open blocks forever, its buffer fills, lines drop.
            try Self.setAccessLogs(process.consul, #""Enabled":true,"Type":"file","Path":"\#(fifo)""#)
            try await Self.waitForOutput(process.gateway, "access log on")
            let urls = (0..<40).map { "https://\(GatewayProcess.sni):\(process.listenPort)/n\($0)" }
            let call = try await ChildProcess.run(
                [
                    "curl", "-sS", "-k", "--cert", process.clientCertificate, "--key", process.clientKey, "--resolve", "\(GatewayProcess.sni):\(process.listenPort):127.0.0.1",
                    "-w", "%{http_code}\n",
                ] + urls.flatMap { ["-o", "/dev/null", $0] }
            )
            #expect(call.stdout.split(separator: "\n") == Array(repeating: "200", count: 40), "\(call.stdout)\(call.stderr)")
            let samples = PrometheusText(try await process.metrics(until: "the 40 requests are counted") { $0.sum("lambda_gateway_requests_total") == 40 })
            let dropped = try #require(samples.value("lambda_gateway_access_log_lines_dropped_total", ["reason": "sink_behind"]))
            // Kept: at most the 8 lines the buffer holds, and the writer's first batch, blocked in
            // its open: every line queued when it woke, up to the same 8. (One line was assumed
            // for that batch; with faster requests it took two once, and 30 lines dropped, not 31.)
            #expect(dropped >= 40 - 8 - 8, "\(dropped)")
            // Unblock the writer so the gateway can stop: a reader opens, reads what was written.
            let reader = open(fifo, O_RDONLY | O_NONBLOCK)
            defer { close(reader) }
        }
    }

    static func isRFC3339Milliseconds(_ text: String?) -> Bool {
        guard let text, text.count == 24, text.hasSuffix("Z") else { return false }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = formatter.date(from: text) else { return false }
        return abs(date.timeIntervalSinceNow) < 600
    }

    /// The metric families `scripts/check_dashboard.py` holds the dashboard and rules to.
    static func contractFamilies() throws -> [String] {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = try String(contentsOfFile: repository.appendingPathComponent("scripts/check_dashboard.py").path, encoding: .utf8)
        let families = script.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("\""), trimmed.contains("\": (\""), let end = trimmed.dropFirst().firstIndex(of: "\"") else { return nil }
            return String(trimmed[trimmed.index(after: trimmed.startIndex)..<end])
        }
        guard families.count > 20 else { throw TestSupportError("cannot read the contract of scripts/check_dashboard.py") }
        return families
    }
}

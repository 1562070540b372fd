import Foundation
import LambdaInvoke
import TestSupport
import Testing

@testable import GatewayCore

/// `/metrics` by the book: every family with HELP and TYPE, the process metrics read from /proc,
/// the new per-request families, and the gauges read at scrape time.
@Suite("metrics exposition")
struct MetricsExpositionTests {
    @Test func everyFamilyHasHelpAndTypeAndTheRequestFamiliesCountARequest() throws {
        let metrics = GatewayMetrics()
        metrics.requestCompleted(
            GatewayMetrics.RequestRecord(
                service: "orders", status: 429, outcome: .invokeError, duration: .milliseconds(3), lambdaCall: .milliseconds(2),
                lambdaErrorType: LambdaErrorType(LambdaInvokeError(.aws(status: 429, errorCode: "TooManyRequestsException"), "slow down")),
                requestBodyBytes: 120, responseBodyBytes: 80
            )
        )
        metrics.accessLogLinesDropped(3, .sinkBehind)
        let text = metrics.exposition(snapshot: .empty, inFlight: 2)
        let families = Set(
            text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
                String(line.prefix { $0 != "{" && $0 != " " })
            }.map { name in
                ["_bucket", "_sum", "_count"].reduce(name) { name, suffix in name.hasSuffix(suffix) && name.contains("duration") ? String(name.dropLast(suffix.count)) : name }
            })
        for family in families {
            #expect(text.contains("# HELP \(family) "), "no HELP for \(family)")
            #expect(text.contains("# TYPE \(family) "), "no TYPE for \(family)")
        }
        let samples = PrometheusText(text)
        #expect(samples.value("lambda_gateway_requests_total", ["service": "orders", "status": "429", "outcome": "invoke_error"]) == 1)
        #expect(samples.value("lambda_gateway_request_duration_seconds_bucket", ["service": "orders", "le": "0.0025"]) == 0)
        #expect(samples.value("lambda_gateway_request_duration_seconds_bucket", ["service": "orders", "le": "0.005"]) == 1)
        #expect(samples.value("lambda_gateway_lambda_call_duration_seconds_count", ["service": "orders"]) == 1)
        #expect(samples.value("lambda_gateway_request_body_bytes_total", ["service": "orders"]) == 120)
        #expect(samples.value("lambda_gateway_response_body_bytes_total", ["service": "orders"]) == 80)
        #expect(samples.value("lambda_gateway_lambda_errors_total", ["service": "orders", "error_type": "TooManyRequestsException"]) == 1)
        #expect(samples.value("lambda_gateway_access_log_lines_dropped_total", ["reason": "sink_behind"]) == 3)
        #expect(samples.value("lambda_gateway_requests_in_flight") == 2)
    }

    /// Streamed answers: counted by how they ended, their bytes in both byte families; promtool
    /// has nothing to say about the new families.
    @Test func streamedAnswersAreCountedByResult() async throws {
        let metrics = GatewayMetrics()
        let events = metrics.service("events")
        events.record(GatewayMetrics.RequestRecord(service: "events", status: 200, outcome: .invoked, durationNanoseconds: 2_000_000, responseBodyBytes: 300, streamed: .complete))
        events.record(GatewayMetrics.RequestRecord(service: "events", status: 200, outcome: .invokeError, durationNanoseconds: 1_000_000, responseBodyBytes: 40, streamed: .incomplete))
        events.record(GatewayMetrics.RequestRecord(service: "events", status: 502, outcome: .functionError, durationNanoseconds: 1_000_000, responseBodyBytes: 60))
        let text = metrics.exposition(snapshot: .empty, inFlight: 0)
        let samples = PrometheusText(text)
        #expect(samples.value("lambda_gateway_streamed_responses_total", ["service": "events", "result": "complete"]) == 1)
        #expect(samples.value("lambda_gateway_streamed_responses_total", ["service": "events", "result": "incomplete"]) == 1)
        #expect(samples.value("lambda_gateway_streamed_response_bytes_total", ["service": "events"]) == 340, "a buffered answer's bytes are not a stream's")
        #expect(samples.value("lambda_gateway_response_body_bytes_total", ["service": "events"]) == 400)
        let files = try TemporaryDirectory()
        defer { files.remove() }
        let file = try files.file("metrics.txt", contents: text)
        let lint = try await ChildProcess.run(["sh", "-c", "promtool check metrics < \(file)"])
        #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "\(lint.stdout) \(lint.stderr)")
    }

    @Test func aHistogramBucketIncludesItsBoundAndCountsAccumulateUpToInf() throws {
        let metrics = GatewayMetrics()
        // On a bound (inclusive), just above it, beyond the last bound (30 s), and zero.
        for duration: Duration in [.milliseconds(5), .nanoseconds(5_000_001), .seconds(31), .zero] {
            metrics.requestCompleted(GatewayMetrics.RequestRecord(service: "orders", status: 200, outcome: .invoked, duration: duration))
        }
        metrics.requestCompleted(GatewayMetrics.RequestRecord(service: "users", status: 403, outcome: .denied, duration: .milliseconds(1)))
        let text = metrics.exposition(snapshot: .empty, inFlight: 0)
        let samples = PrometheusText(text)
        let family = "lambda_gateway_request_duration_seconds"
        #expect(samples.value("\(family)_bucket", ["service": "orders", "le": "0.0005"]) == 1)
        #expect(samples.value("\(family)_bucket", ["service": "orders", "le": "0.005"]) == 2)
        #expect(samples.value("\(family)_bucket", ["service": "orders", "le": "0.01"]) == 3)
        #expect(samples.value("\(family)_bucket", ["service": "orders", "le": "30.0"]) == 3)
        #expect(samples.value("\(family)_bucket", ["service": "orders", "le": "+Inf"]) == 4)
        #expect(samples.value("\(family)_count", ["service": "orders"]) == 4)
        #expect(abs(try #require(samples.value("\(family)_sum", ["service": "orders"])) - 31.01) < 1e-9, "microseconds")
        #expect(samples.value("\(family)_count", ["service": "users"]) == 1)
        // One HELP and TYPE for the family, its series after them, and no Lambda-call family
        // while no service has called Lambda.
        #expect(text.components(separatedBy: "# TYPE \(family) histogram\n").count == 2)
        #expect(!text.contains("lambda_gateway_lambda_call_duration_seconds"))
        let lines = text.split(separator: "\n")
        let typeLine = try #require(lines.firstIndex(of: "# TYPE \(family) histogram"))
        let series = lines.indices.filter { lines[$0].hasPrefix(family) }
        #expect(series.count == 2 * (GatewayMetrics.requestBuckets.count + 3))
        #expect(series.allSatisfy { $0 > typeLine } && series.last! - series.first! == series.count - 1)
    }

    @Test func theProcessMetricsComeFromProc() throws {
        let samples = PrometheusText(GatewayMetrics().exposition(snapshot: .empty, inFlight: 0))
        let start = try #require(samples.value("process_start_time_seconds"))
        #expect(abs(start - Date().timeIntervalSince1970) < 24 * 3600, "\(start)")
        #expect(try #require(samples.value("process_cpu_seconds_total")) > 0)
        #expect(try #require(samples.value("process_resident_memory_bytes")) > 1_000_000)
        #expect(try #require(samples.value("process_virtual_memory_bytes")) >= samples.value("process_resident_memory_bytes")!)
        // The other suites open and close descriptors in this process meanwhile, sometimes a
        // hundred between two reads (207 -> 284 -> 178 once): 100 of our own stand out of that
        // noise in at least one of three tries, while a gauge that does not follow /proc never does.
        func openFDs() throws -> Double { try #require(PrometheusText(GatewayMetrics().exposition(snapshot: .empty, inFlight: 0)).value("process_open_fds")) }
        let file = try TemporaryDirectory()
        defer { file.remove() }
        var tries: [String] = []
        var more = 0.0
        var followed = false
        for attempt in 0..<3 {
            let open = try openFDs()
            let handles = try (0..<100).map { try FileHandle(forWritingTo: URL(fileURLWithPath: try file.file("f\(attempt)-\($0)", contents: ""))) }
            more = try openFDs()
            for handle in handles { try handle.close() }
            let fewer = try openFDs()
            tries.append("\(open) -> \(more) -> \(fewer)")
            if more >= open + 90 && more >= fewer + 90 {
                followed = true
                break
            }
        }
        #expect(followed, "\(tries)")
        #expect(try #require(samples.value("process_max_fds")) >= more)
        // A command name with spaces and `)` does not shift the fields.
        #expect(ProcessMetrics.statFields("42 (a b) c) S 1 2")?.first == "S")
    }

    @Test func labelValuesAreEscapedAndValuesFormatted() {
        var writer = PrometheusTextWriter("")
        writer.family("x_total", "help", type: "counter", [([("watch", "a\"b\\c\nd")], 1.5), ([], 3)])
        #expect(writer.text == "# HELP x_total help\n# TYPE x_total counter\nx_total{watch=\"a\\\"b\\\\c\\nd\"} 1.5\nx_total 3\n")
        writer.family("empty", "no samples", type: "gauge", [])
        #expect(!writer.text.contains("empty"))
    }

    @Test func watchStalenessIsTheOldestAnswerAmongAnEndpointsRunningWatches() {
        let freshness = ConsulWatchFreshness()
        let start = ContinuousClock.now
        let first = freshness.started("/v1/config/service-defaults", now: start)
        let second = freshness.started("/v1/config/service-defaults", now: start)
        let roots = freshness.started("/v1/agent/connect/ca/roots", now: start)
        first.answered(now: start + .seconds(50))
        second.answered(now: start + .seconds(20))
        roots.answered(now: start + .seconds(55))
        #expect(freshness.staleness(now: start + .seconds(60)) == ["/v1/config/service-defaults": 40, "/v1/agent/connect/ca/roots": 5])
        // A refused watch (403, retried by design) does not count until it answers again.
        second.refused()
        #expect(freshness.staleness(now: start + .seconds(60))["/v1/config/service-defaults"] == 10)
        second.answered(now: start + .seconds(30))
        #expect(freshness.staleness(now: start + .seconds(60))["/v1/config/service-defaults"] == 30)
        second.ended()
        #expect(freshness.staleness(now: start + .seconds(60))["/v1/config/service-defaults"] == 10)
        first.ended()
        roots.ended()
        #expect(freshness.staleness(now: start + .seconds(60)).isEmpty)
    }

    @Test func lambdaErrorTypesAreABoundedSet() {
        #expect(LambdaErrorType(LambdaInvokeError(.aws(status: 404, errorCode: "ResourceNotFoundException"), "")).rawValue == "ResourceNotFoundException")
        #expect(LambdaErrorType(LambdaInvokeError(.aws(status: 500, errorCode: "Whatever\nan endpoint sends"), "")) == .otherAWSError)
        #expect(LambdaErrorType(LambdaInvokeError(.timeout, "")).rawValue == "Timeout")
        #expect(LambdaErrorType(LambdaInvokeError(.endpointUnreachable, "")).rawValue == "ConnectionFailure")
        #expect(LambdaErrorType(functionError: "Unhandled").rawValue == "Unhandled")
        #expect(LambdaErrorType(functionError: "Surprise") == .functionError)
    }

    @Test func certificateExpiriesAreReadFromTheSnapshot() throws {
        let ca = try TestCA(commonName: "root")
        var snapshot = GatewaySnapshot.empty
        snapshot.rootPEMs = [try ca.pem]
        let now = Date()
        let text = GatewayMetrics().exposition(snapshot: snapshot, inFlight: 0, now: now)
        let samples = PrometheusText(text)
        let expiries = GatewayMetrics.rootExpiries([try ca.pem])
        #expect(expiries.count == 1)
        let value = try #require(samples.value("lambda_gateway_ca_root_expiry_seconds", ["root": expiries[0].serial]))
        #expect(abs(value - expiries[0].notAfter.timeIntervalSince(now)) < 1 && value > 0)
    }
}

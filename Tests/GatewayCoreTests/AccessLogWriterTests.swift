import ConsulAPI
import Foundation
import LambdaPayload
import TestSupport
import Testing

@testable import GatewayCore

#if canImport(Glibc)
    import Glibc
#endif

/// The access log's settings and its writer thread: Consul's `AccessLogs` compiled, lines written
/// off the caller's thread, a slow sink never holding a caller, the file reopened on request.
@Suite("access-log settings and writer")
struct AccessLogWriterTests {
    static func entry(_ code: Int) -> AccessLogEntry {
        var entry = AccessLogEntry(startTime: WallClockTime(nanosecondsSinceEpoch: 1_765_000_000_000_000_000), connection: AccessLogConnection())
        entry.responseCode = code
        return entry
    }

    static func settings(_ path: String) throws -> AccessLogSettings {
        try #require(try AccessLogSettings.compile(AccessLogsConfig(Enabled: true, Type: "file", Path: path, TextFormat: "%RESPONSE_CODE%")))
    }

    /// Waits until `path` holds `lines` lines (the writer is a thread of its own).
    static func waitForLines(_ path: String, _ lines: Int) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            // Complete lines only: the writer may be half-way through one.
            let found = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
            if found.count >= lines { return found }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestSupportError("\(path) never had \(lines) lines")
    }

    @Test func consulsAccessLogsCompileAsConsulReadsThem() throws {
        #expect(try AccessLogSettings.compile(nil) == nil)
        #expect(try AccessLogSettings.compile(AccessLogsConfig(Enabled: false, TextFormat: "%FOO%")) == nil)
        let standard = try #require(try AccessLogSettings.compile(AccessLogsConfig(Enabled: true)))
        #expect(standard.sink == .standardOutput && standard.listenerLogs)
        #expect(try AccessLogSettings.compile(AccessLogsConfig(Enabled: true, DisableListenerLogs: true, Type: "stderr"))?.sink == .standardError)
        #expect(try AccessLogSettings.compile(AccessLogsConfig(Enabled: true, DisableListenerLogs: true))?.listenerLogs == false)
        func refusal(_ config: AccessLogsConfig) -> String {
            do {
                _ = try AccessLogSettings.compile(config)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(refusal(AccessLogsConfig(Enabled: true, JSONFormat: "{\"a\":\"%START_TIME%\"}", TextFormat: "%START_TIME%")) == "AccessLogs sets both JSONFormat and TextFormat")
        #expect(refusal(AccessLogsConfig(Enabled: true, Type: "syslog")).contains("is not stdout, stderr or file"))
        #expect(refusal(AccessLogsConfig(Enabled: true, Type: "file")).contains("Path is empty"))
        #expect(refusal(AccessLogsConfig(Enabled: true, TextFormat: "%NOT_AN_OPERATOR%")).contains("%NOT_AN_OPERATOR%"))
    }

    @Test func linesAreWrittenInOrderAndTheFileIsReopenedAfterItMoved() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.url.appendingPathComponent("access.log").path
        let metrics = GatewayMetrics()
        let writer = AccessLogWriter(metrics: metrics, logger: .init(label: "test"))
        defer { writer.stop() }
        let settings = try Self.settings(path)
        for code in [200, 201, 202] { #expect(writer.submit(.init(entry: Self.entry(code), settings: settings))) }
        #expect(try await Self.waitForLines(path, 3) == ["200", "201", "202"])

        // logrotate moves the file, then SIGHUP: the next lines go to a new file at the path.
        let moved = directory.url.appendingPathComponent("access.log.1").path
        try FileManager.default.moveItem(atPath: path, toPath: moved)
        writer.reopen()
        writer.submit(.init(entry: Self.entry(204), settings: settings))
        #expect(try await Self.waitForLines(path, 1) == ["204"])
        #expect(try String(contentsOfFile: moved, encoding: .utf8) == "200\n201\n202\n")
        // Counted after the write: the file can show the line first.
        try await waitUntil("four lines counted") { PrometheusText(metrics.exposition(snapshot: .empty, inFlight: 0)).value("lambda_gateway_access_log_lines_total") == 4 }
    }

    @Test func aSinkNobodyReadsNeverHoldsTheCallerAndItsDropsAreCounted() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fifo = directory.url.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // A reader that never reads: the pipe's 64 KiB fill, then every write blocks.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        let metrics = GatewayMetrics()
        let writer = AccessLogWriter(capacity: 100, metrics: metrics, logger: .init(label: "test"))
        defer { writer.stop(timeout: .milliseconds(100)) }
        let settings = try Self.settings(fifo)
        var accepted = 0
        for _ in 0..<50_000 where writer.submit(.init(entry: Self.entry(200), settings: settings)) { accepted += 1 }
        // 50,000 hand-overs complete while the sink is stuck (no wall-clock bound: it is noisy here).
        let dropped = try #require(PrometheusText(metrics.exposition(snapshot: .empty, inFlight: 0)).value("lambda_gateway_access_log_lines_dropped_total", ["reason": "sink_behind"]))
        #expect(dropped == Double(50_000 - accepted))
        // The pipe holds at most 64 KiB of 4-byte lines; the buffer 100 entries more, plus a batch.
        #expect(accepted < 20_000, "\(accepted) accepted")
    }

    @Test func standardOutputGetsWholeLinesInPiecesAPipeTakesAtOnce() {
        let lines = Array((String(repeating: "a", count: 99) + "\n").utf8).repeated(50) + Array((String(repeating: "b", count: 9000) + "\n").utf8) + Array("c\n".utf8)
        let pieces = OpenSink.pieces(lines, limit: 4096)
        #expect(pieces.first == 0..<4000 && pieces[1] == 4000..<5000)
        #expect(pieces.allSatisfy { lines[$0.upperBound - 1] == UInt8(ascii: "\n") })
        #expect(pieces.map(\.count).filter { $0 > 4096 } == [9001])
        #expect(pieces.last == 14001..<14003 && pieces.reduce(0) { $0 + $1.count } == lines.count)
    }

    @Test func entriesHoldingTooMuchAreDroppedBeforeTheLineCountIsReached() async throws {
        let metrics = GatewayMetrics()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fifo = directory.url.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // No reader: the writer waits in open(); entries stay buffered.
        let writer = AccessLogWriter(capacity: 1000, capacityBytes: 64 * 1024, metrics: metrics, logger: .init(label: "test"))
        defer { writer.stop(timeout: .milliseconds(100)) }
        var big = Self.entry(200)
        big.requestHeaders = [HTTPField("user-agent", String(repeating: "x", count: 16 * 1024))]
        let settings = try Self.settings(fifo)
        let accepted = (0..<20).filter { _ in writer.submit(.init(entry: big, settings: settings)) }.count
        #expect(accepted <= 8, "\(accepted)")
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        close(reader)
    }

    @Test func aFileThatCannotBeOpenedCountsItsLinesAsFailed() async throws {
        let metrics = GatewayMetrics()
        let writer = AccessLogWriter(metrics: metrics, logger: .init(label: "test"))
        defer { writer.stop() }
        let settings = try Self.settings("/nonexistent/directory/access.log")
        writer.submit(.init(entry: Self.entry(200), settings: settings))
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if PrometheusText(metrics.exposition(snapshot: .empty, inFlight: 0)).value("lambda_gateway_access_log_lines_dropped_total", ["reason": "sink_failed"]) == 1 { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("the failed line was never counted")
    }
}

extension Array {
    func repeated(_ times: Int) -> [Element] {
        (0..<times).flatMap { _ in self }
    }
}

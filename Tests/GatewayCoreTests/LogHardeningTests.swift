import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

@testable import GatewayCore

/// A log handler that keeps every line: level, message, and metadata rendered as the stream
/// handler would.
final class CapturedLogs: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let storage = Mutex<[Line]>([])
    var lines: [Line] { storage.withLock { $0 } }

    func logger(_ label: String = "test", level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: label) { _ in Handler(logs: self) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ line: Line) { storage.withLock { $0.append(line) } }

    struct Handler: LogHandler {
        let logs: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            let merged = self.metadata.merging(metadata ?? [:]) { $1 }
            logs.append(Line(level: level, message: message.description, metadata: merged.mapValues { "\($0)" }))
        }
    }
}

/// A TLS 1.2 ClientHello whose SNI is `name`, byte for byte: what an attacker sends, with no TLS
/// library that would refuse control characters.
func clientHello(sni name: [UInt8]) -> [UInt8] {
    func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    let nameList = [0x00] + u16(name.count) + name
    let sniExtension = u16(0x0000) + u16(nameList.count + 2) + u16(nameList.count) + nameList
    let body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 7, count: 32) + [0x00] + u16(2) + [0xC0, 0x2F] + [0x01, 0x00] + u16(sniExtension.count) + sniExtension
    let handshake = [0x01, 0x00] + u16(body.count) + body
    return [0x16, 0x03, 0x01] + u16(handshake.count) + handshake
}

@Suite("Logs a peer cannot forge or flood")
struct LogHardeningTests {
    @Test func networkValuesAreEscapedAndCapped() {
        #expect(LogSafe.text("orders.default.dc1.internal.x.consul") == "orders.default.dc1.internal.x.consul")
        #expect(LogSafe.text("a\nb\r\u{1b}[31mc\0d\\e") == #"a\x0ab\x0d\x1b[31mc\x00d\\e"#)
        #expect(LogSafe.text("é") == #"\xc3\xa9"#)
        let long = LogSafe.text(String(repeating: "x", count: 1000), limit: 10)
        #expect(long == "xxxxxxxxxx...(+990 bytes)")
        #expect(long.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F })
        #expect(LogSafe.text(String(repeating: "\n", count: 300)).utf8.count < 300 * 4 + 32)
    }

    @Test func aRateLimitedLineIsWrittenAFewTimesAWindowThenSummedUp() async throws {
        let logs = CapturedLogs()
        let log = RateLimitedLog("refused", burst: 3, window: .milliseconds(300), logger: logs.logger())
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        for index in 0..<50 { log.record(sample: "s\(index)", metadata: ["n": "\(index)"], on: loop) }
        #expect(logs.lines.count == 3)
        let deadline = ContinuousClock.now + .seconds(3)
        while logs.lines.count < 4 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let summary = try #require(logs.lines.last)
        #expect(summary.metadata["suppressed"] == "47" && summary.metadata["last"] == "s49", "\(summary)")
        // A new window writes again.
        log.record(sample: "again", metadata: [:], on: loop)
        #expect(logs.lines.count == 5)
    }

    @Test func unknownSNIsCannotWriteRawBytesOrFloodTheLog() async throws {
        let logs = CapturedLogs()
        try await SnapshotFixture.with(prepare: prepareTwoServices) { snapshots in
            try await snapshots.waitFor("both services") { $0.services.count == 2 }
            let metrics = GatewayMetrics()
            let window = Duration.seconds(5)
            let acceptor = MeshTLSAcceptor(store: snapshots.store, metrics: metrics, logger: logs.logger("tls", level: .info), refusalLogWindow: TimeAmount(window))
            let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in acceptor.configure(channel) { channel, _ in channel.close() } }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            let port = listener.localAddress!.port!
            let evil = Array("x\n2026-12-05T00:00:00 info lambda-gateway: forged line\u{1b}[2J\0".utf8)
            let started = ContinuousClock.now
            // All at once, as a flood comes.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
                        try await channel.writeAndFlush(ByteBuffer(bytes: clientHello(sni: evil)))
                        try? await channel.closeFuture.get()  // the gateway closes it
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            // Every refusal is accounted for: written, or counted in a summary (the last one is
            // written when its window ends).
            func accounted(_ lines: [CapturedLogs.Line]) -> Int {
                lines.reduce(0) { $0 + ($1.metadata["suppressed"].flatMap { Int($0) } ?? 1) }
            }
            let deadline = ContinuousClock.now + .seconds(12)
            while accounted(logs.lines) < 40 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            try? await listener.close()
            let lines = logs.lines
            #expect(accounted(lines) == 40, "\(lines.map(\.message))")
            // At most five lines one by one per window, plus one summary per window.
            let windows = Int((elapsed / window).rounded(.up)) + 1
            let oneByOne = lines.filter { $0.metadata["suppressed"] == nil }.count
            #expect(oneByOne <= 5 * windows && oneByOne < 40, "\(oneByOne) lines in \(windows) windows")
            #expect(lines.contains { $0.metadata["suppressed"] != nil })
            for line in lines {
                for value in line.metadata.values {
                    #expect(value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "raw bytes reached the log: \(value.debugDescription)")
                }
            }
            #expect(lines.first?.metadata["sni"]?.hasPrefix(#"x\x0a2026-12-05"#) == true, "\(String(describing: lines.first))")
        }
    }
}

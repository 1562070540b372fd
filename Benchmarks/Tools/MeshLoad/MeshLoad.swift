import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TLSFiles

/// `mesh-load`: drives a gateway the way Consul sidecars do. mTLS with a client certificate and SNI,
/// HTTP/1.1 keep-alive over N connections or HTTP/2 with S concurrent streams on each, closed loop (max throughput) or open loop at a fixed rate
/// (latency measured from each request's intended start, so a stall is not hidden: no coordinated
/// omission), or a new handshake per request. Reports throughput, errors by kind and HDR latency
/// percentiles, as text and as one JSON line.
@main
struct MeshLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mesh-load", abstract: "Load a mesh mTLS endpoint like Consul sidecars do.")

    @Option(help: "Target address.") var host = "127.0.0.1"
    @Option(help: "Target port.") var port: Int
    @Option(help: "SNI (and Host header); omit with --plaintext.") var sni: String?
    @Option(help: "CA that signs the server certificate, PEM or DER (omit: no verification).") var ca: String?
    @Flag(name: .customLong("no-hostname-check"), help: "Check the server's chain against --ca but not its name (Consul leaves carry a SPIFFE URI, no DNS name).")
    var noHostnameCheck = false
    @Option(help: "Client certificate, PEM or DER.") var cert: String?
    @Option(help: "Client key, PEM or DER.") var key: String?
    @Flag(help: "Plain HTTP (direct listeners, or the upstream itself without TLS).") var plaintext = false
    @Option(help: "Connections.") var connections = 16
    @Option(help: "Seconds of measurement.") var duration: Double = 10
    @Option(help: "Seconds of warm-up before measuring.") var warmup: Double = 1
    @Option(help: "Total requests per second, open loop; 0 = closed loop (max throughput).") var rate: Double = 0
    @Option(name: .customLong("body-size"), help: "Request body bytes (JSON).") var bodySize = 1024
    @Option(help: "Request path.") var path = "/load"
    @Option(help: "HTTP method.") var method = "POST"
    @Flag(help: "A new TLS connection per request: measures full handshakes per second.") var handshake = false
    @Flag(help: "HTTP/2 (ALPN h2), --streams concurrent streams on each connection.") var http2 = false
    @Option(help: "Concurrent streams per HTTP/2 connection.") var streams = 16
    @Option(help: "A label for the JSON line.") var label = "run"
    @Option(name: .customLong("threads"), help: "Event loop threads.") var threads = 1

    func validate() throws {
        if http2 && handshake { throw ValidationError("--handshake measures HTTP/1.1 connections; drop --http2") }
        if http2 && plaintext { throw ValidationError("--http2 needs TLS (ALPN)") }
        if connections < 1 || streams < 1 { throw ValidationError("--connections and --streams must be at least 1") }
    }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            try await load(group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
    }

    func load(group: MultiThreadedEventLoopGroup) async throws {
        var tlsContext: NIOSSLContext?
        if !plaintext {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let ca {
                tls.trustRoots = .certificates(try TLSFile(setting: "--ca", path: ca).certificates())
                if noHostnameCheck { tls.certificateVerification = .noHostnameVerification }
            } else {
                tls.certificateVerification = .none
            }
            if let cert, let key {
                tls.certificateChain = try TLSFile(setting: "--cert", path: cert).certificates().map { .certificate($0) }
                tls.privateKey = .privateKey(try TLSFile(setting: "--key", path: key).privateKey())
            }
            tls.applicationProtocols = http2 ? ["h2"] : ["http/1.1"]
            tlsContext = try NIOSSLContext(configuration: tls)
        }
        let body = Self.jsonBody(size: bodySize)
        let target = Target(host: host, port: port, sni: sni, tls: tlsContext, method: method, path: path, body: body)
        let start = NIODeadline.now() + .milliseconds(100)
        let measureFrom = start + .nanoseconds(Int64(warmup * 1e9))
        let end = measureFrom + .nanoseconds(Int64(duration * 1e9))
        let slotsPerConnection = http2 ? streams : 1
        let slots = connections * slotsPerConnection
        let interval: TimeAmount? = rate > 0 ? .nanoseconds(Int64(Double(slots) / rate * 1e9)) : nil

        var workers: [Worker] = []
        for _ in 0..<connections {
            let eventLoop = group.next()
            let session = http2 ? HTTP2Session(target: target, eventLoop: eventLoop) : nil
            for _ in 0..<slotsPerConnection {
                let offset = interval.map { $0.nanoseconds * Int64(workers.count) / Int64(slots) } ?? 0
                workers.append(
                    Worker(
                        target: target, eventLoop: eventLoop, start: start + .nanoseconds(offset), measureFrom: measureFrom, end: end, interval: interval, reconnectEachRequest: handshake,
                        session: session))
            }
        }
        let results = try await withThrowingTaskGroup(of: Worker.Result.self) { tasks in
            for worker in workers { tasks.addTask { try await worker.run() } }
            var all: [Worker.Result] = []
            for try await result in tasks { all.append(result) }
            return all
        }
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var errors: [String: Int] = [:]
        var completed = 0
        for result in results {
            histogram.add(result.histogram)
            completed += result.completed
            for (kind, count) in result.errors { errors[kind, default: 0] += count }
        }
        let seconds = duration
        func us(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) }
        let summary: [String: Any] = [
            "label": label, "mode": handshake ? "handshake" : (rate > 0 ? "open" : "closed"), "connections": connections,
            "protocol": http2 ? "h2" : "http/1.1", "streams_per_connection": slotsPerConnection,
            "target_rate": rate, "duration_s": seconds, "warmup_s": warmup, "body_bytes": bodySize,
            "requests": completed, "rps": Double(completed) / seconds,
            "errors": errors, "error_count": errors.values.reduce(0, +),
            "latency_us": ["p50": us(50), "p90": us(90), "p99": us(99), "p99.9": us(99.9), "max": Double(histogram.max)],
        ]
        print(String(format: "%@: %d requests in %.1f s = %.0f req/s, %d errors %@", label, completed, seconds, Double(completed) / seconds, errors.values.reduce(0, +), errors.description))
        print(String(format: "latency µs  p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f", us(50), us(90), us(99), us(99.9), Double(histogram.max)))
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    /// A JSON object of exactly `size` bytes (at least the braces and one key).
    static func jsonBody(size: Int) -> ByteBuffer {
        let overhead = #"{"pad":""}"#.utf8.count
        return ByteBuffer(string: #"{"pad":""# + String(repeating: "x", count: max(0, size - overhead)) + #""}"#)
    }
}

struct Target: Sendable {
    var host: String
    var port: Int
    var sni: String?
    var tls: NIOSSLContext?
    var method: String
    var path: String
    var body: ByteBuffer
}

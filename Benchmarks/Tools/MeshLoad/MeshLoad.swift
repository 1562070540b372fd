import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// `mesh-load`: drives a gateway the way Consul sidecars do. mTLS with a client certificate and SNI,
/// HTTP/1.1 keep-alive over N connections, closed loop (max throughput) or open loop at a fixed rate
/// (latency measured from each request's intended start, so a stall is not hidden: no coordinated
/// omission), or a new handshake per request. Reports throughput, errors by kind and HDR latency
/// percentiles, as text and as one JSON line.
@main
struct MeshLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mesh-load", abstract: "Load a mesh mTLS endpoint like Consul sidecars do.")

    @Option(help: "Target address.") var host = "127.0.0.1"
    @Option(help: "Target port.") var port: Int
    @Option(help: "SNI (and Host header); omit with --plaintext.") var sni: String?
    @Option(help: "PEM CA that signs the server certificate (omit: no verification).") var ca: String?
    @Option(help: "Client certificate PEM.") var cert: String?
    @Option(help: "Client key PEM.") var key: String?
    @Flag(help: "Plain HTTP (direct listeners, or the upstream itself without TLS).") var plaintext = false
    @Option(help: "Connections.") var connections = 16
    @Option(help: "Seconds of measurement.") var duration: Double = 10
    @Option(help: "Seconds of warm-up before measuring.") var warmup: Double = 1
    @Option(help: "Total requests per second, open loop; 0 = closed loop (max throughput).") var rate: Double = 0
    @Option(name: .customLong("body-size"), help: "Request body bytes (JSON).") var bodySize = 1024
    @Option(help: "Request path.") var path = "/load"
    @Option(help: "HTTP method.") var method = "POST"
    @Flag(help: "A new TLS connection per request: measures full handshakes per second.") var handshake = false
    @Option(help: "A label for the JSON line.") var label = "run"
    @Option(name: .customLong("threads"), help: "Event loop threads.") var threads = 1

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
            if let ca { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) } else { tls.certificateVerification = .none }
            if let cert, let key {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            tls.applicationProtocols = ["http/1.1"]
            tlsContext = try NIOSSLContext(configuration: tls)
        }
        let body = Self.jsonBody(size: bodySize)
        let target = Target(host: host, port: port, sni: sni, tls: tlsContext, method: method, path: path, body: body)
        let start = NIODeadline.now() + .milliseconds(100)
        let measureFrom = start + .nanoseconds(Int64(warmup * 1e9))
        let end = measureFrom + .nanoseconds(Int64(duration * 1e9))
        let interval: TimeAmount? = rate > 0 ? .nanoseconds(Int64(Double(connections) / rate * 1e9)) : nil

        let workers = (0..<connections).map { index in
            Worker(target: target, eventLoop: group.next(), start: start + .nanoseconds(interval.map { $0.nanoseconds * Int64(index) / Int64(connections) } ?? 0), measureFrom: measureFrom, end: end, interval: interval, reconnectEachRequest: handshake)
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
            "target_rate": rate, "duration_s": seconds, "body_bytes": bodySize,
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

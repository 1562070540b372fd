import Foundation
import LambdaInvoke
import X509

/// What `/metrics` reads from the rest of the process when it is scraped, set once at start.
public struct ExpositionSources: Sendable {
    /// The Invoke client's connections to Lambda.
    public var upstream: (@Sendable () -> UpstreamPoolStatistics)?
    /// The credential cache's refreshes (nil with fixed credentials).
    public var credentialRefreshes: (@Sendable () -> (attempts: Int, failures: Int))?
    /// `lambda_gateway_build_info{version}`.
    public var version: String?

    public init() {}
}

/// The gauges, read at the moment `/metrics` is scraped, after the registry's counters and histograms.
extension GatewayMetrics {
    public func exposition(snapshot: GatewaySnapshot, inFlight: Int, openConnections: Int = 0, now: Date = Date()) -> String {
        var text = PrometheusTextWriter(registry.emitToString())
        let sources = self.sources.withLock { $0 }

        let services = allServices
        text.histograms(Family.requestDuration, Help.requestDuration, services.map { ([("service", $0.service)], $0.requestDuration) })
        text.histograms(Family.lambdaCallDuration, Help.lambdaCallDuration, services.compactMap { series in series.lambdaCalls.load().map { ([("service", series.service)], $0) } })

        text.gauge("lambda_gateway_requests_in_flight", "Requests being processed now.", Double(inFlight))
        text.gauge("lambda_gateway_connections_open", "Client connections open now, on every listener.", Double(openConnections))
        text.gauge("lambda_gateway_held_answer_bytes", "Answer bytes held for clients that have not read them yet.", Double(heldAnswers.load(ordering: .relaxed)))

        text.gauge("lambda_gateway_snapshot_version", "Version of the configuration snapshot being served (0: none yet).", Double(snapshot.version))
        text.gauge(
            "lambda_gateway_snapshot_age_seconds", "Seconds since the configuration snapshot being served was built (grows while nothing changes).",
            snapshot.version > 0 ? max(0, now.timeIntervalSince(snapshot.createdAt)) : 0
        )
        text.gauge("lambda_gateway_services_served", "Linked services the gateway answers for.", Double(snapshot.services.count))
        var notServed: [NotServedReason.Kind: Int] = [:]
        for reason in snapshot.notServed.values { notServed[reason.kind, default: 0] += 1 }
        text.family(
            "lambda_gateway_services_not_served", "Linked services not served, by reason.", type: "gauge", NotServedReason.Kind.allCases.map { ([("reason", $0.rawValue)], Double(notServed[$0] ?? 0)) }
        )

        let staleness = consulWatches.staleness()
        text.family(
            "lambda_gateway_consul_watch_staleness_seconds", "Seconds since the least recently answered Consul watch of each endpoint got an answer.", type: "gauge",
            staleness.keys.sorted().map { ([("watch", $0)], staleness[$0]!) }
        )
        text.family(
            "lambda_gateway_leaf_certificate_expiry_seconds", "Seconds until the leaf certificate the gateway presents for each service expires (negative: expired).", type: "gauge",
            snapshot.services.keys.sorted().map { key in ([("service", key)], snapshot.services[key]!.leaf.validBefore.timeIntervalSince(now)) }
        )
        text.family(
            "lambda_gateway_ca_root_expiry_seconds", "Seconds until each trusted Consul CA root expires (negative: expired), by root serial number.", type: "gauge",
            rootExpiries(snapshot.rootPEMs).map { ([("root", $0.serial)], $0.notAfter.timeIntervalSince(now)) }
        )

        if let upstream = sources.upstream?() {
            text.gauge("lambda_gateway_upstream_connections_open", "Connections to Lambda open (or being opened), idle ones included.", Double(upstream.open))
            text.gauge("lambda_gateway_upstream_connections_idle", "Connections to Lambda waiting in the pool for a request.", Double(upstream.idle))
            text.family(
                "lambda_gateway_upstream_tls_handshakes_total", "TLS handshakes to Lambda, by result.", type: "counter",
                [([("result", "success")], Double(upstream.handshakes)), ([("result", "failure")], Double(upstream.failedHandshakes))]
            )
        }
        if let refreshes = sources.credentialRefreshes?() {
            text.counter("lambda_gateway_credential_refreshes_total", "AWS credential refreshes run (through the credential chain).", Double(refreshes.attempts))
            text.counter("lambda_gateway_credential_refresh_failures_total", "AWS credential refreshes that failed (the last good credentials are kept).", Double(refreshes.failures))
        }
        if let version = sources.version {
            text.family("lambda_gateway_build_info", "The gateway's version; always 1.", type: "gauge", [([("version", version)], 1)])
        }

        let process = ProcessMetrics.read()
        if let value = process.cpuSeconds { text.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", value) }
        if let value = process.residentBytes { text.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", value) }
        if let value = process.virtualBytes { text.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", value) }
        if let value = process.openFDs { text.gauge("process_open_fds", "Number of open file descriptors.", value) }
        if let value = process.maxFDs { text.gauge("process_max_fds", "Maximum number of open file descriptors.", value) }
        if let value = process.startTimeSeconds { text.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", value) }
        return text.text
    }

    /// `rootExpiries` of the roots, parsed again only when they change (a scrape every few seconds
    /// would parse every root each time).
    func rootExpiries(_ pems: [String]) -> [(serial: String, notAfter: Date)] {
        rootExpiryCache.withLock { cache in
            if let cached = cache, cached.pems == pems { return cached.expiries }
            let expiries = Self.rootExpiries(pems)
            cache = (pems, expiries)
            return expiries
        }
    }

    /// Each PEM root's serial number and expiry (a root that does not parse is left out).
    static func rootExpiries(_ pems: [String]) -> [(serial: String, notAfter: Date)] {
        pems.compactMap { pem in
            guard let certificate = try? Certificate(pemEncoded: pem) else { return nil }
            return (certificate.serialNumber.bytes.map { String(format: "%02x", $0) }.joined(separator: ":"), certificate.notValidAfter)
        }
    }
}

/// Prometheus' text format (0.0.4) for the families written by hand: `# HELP`, `# TYPE`, samples.
struct PrometheusTextWriter {
    private(set) var text: String

    init(_ start: String) {
        text = start
    }

    mutating func gauge(_ name: String, _ help: String, _ value: Double) {
        family(name, help, type: "gauge", [([], value)])
    }

    mutating func counter(_ name: String, _ help: String, _ value: Double) {
        family(name, help, type: "counter", [([], value)])
    }

    /// A family with its samples; one without samples is left out.
    mutating func family(_ name: String, _ help: String, type: String, _ samples: [([(String, String)], Double)]) {
        guard !samples.isEmpty else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for (labels, value) in samples {
            text += name
            if !labels.isEmpty {
                text += "{" + Self.render(labels) + "}"
            }
            text += " \(Self.format(value))\n"
        }
    }

    /// A histogram family: each series' cumulative `_bucket`s (`+Inf` last), `_sum` and `_count`.
    mutating func histograms(_ name: String, _ help: String, _ series: [(labels: [(String, String)], histogram: LatencyHistogram)]) {
        guard !series.isEmpty else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (labels, histogram) in series {
            let reading = histogram.cumulative
            let rendered = Self.render(labels)
            let prefix = rendered.isEmpty ? "" : rendered + ","
            for bucket in reading.buckets {
                text += "\(name)_bucket{\(prefix)le=\"\(bucket.le)\"} \(bucket.count)\n"
            }
            let braced = rendered.isEmpty ? "" : "{\(rendered)}"
            text += "\(name)_sum\(braced) \(Self.format(reading.sumSeconds))\n"
            text += "\(name)_count\(braced) \(reading.count)\n"
        }
    }

    /// `name="value",…`, values escaped.
    static func render(_ labels: [(String, String)]) -> String {
        labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
    }

    /// A label value as the text format wants it: `\`, `"` and newlines escaped.
    static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

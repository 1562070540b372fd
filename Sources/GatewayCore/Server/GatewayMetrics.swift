import Atomics
import CoreMetrics
import Foundation
import Prometheus
import Synchronization

/// What became of a request: the `outcome` label of `lambda_gateway_requests_total`.
public enum RequestOutcome: String, Sendable, CaseIterable {
    /// The function answered and its answer went back, whatever status it chose.
    case invoked
    /// The function failed (`X-Amz-Function-Error`), or its answer could not be mapped to HTTP.
    case functionError = "function_error"
    /// The Invoke call failed: throttled, timed out, refused by Lambda, or Lambda not reachable.
    case invokeError = "invoke_error"
    /// Intentions denied the caller (403).
    case denied
    /// Answered before any Lambda call: service no longer served, malformed or oversized request.
    case rejected
}

/// Why a TLS handshake on the mesh listener did not complete: the `reason` label of
/// `lambda_gateway_tls_handshake_failures_total`.
public enum HandshakeFailure: Hashable, Sendable {
    case missingSNI
    case unknownSNI
    case clientCertificate(ClientCertificateRejection)
    /// The caller did not finish the handshake in time.
    case timeout
    /// TLS itself failed: no shared version or cipher, a bad record, the peer went away.
    case tlsError

    public static let allCases: [HandshakeFailure] =
        [.missingSNI, .unknownSNI, .timeout, .tlsError] + ClientCertificateRejection.allCases.map { .clientCertificate($0) }

    public var label: String {
        switch self {
        case .missingSNI: "missing_sni"
        case .unknownSNI: "unknown_sni"
        case .clientCertificate(let rejection): rejection.rawValue
        case .timeout: "handshake_timeout"
        case .tlsError: "tls_error"
        }
    }
}

/// Why the gateway closed a client connection itself, to protect the others: the `reason` label of
/// `lambda_gateway_connections_closed_total`.
public enum ConnectionClosure: String, Sendable, CaseIterable {
    /// A new connection over `--max-connections`.
    case maxConnections = "max_connections"
    /// A request head not complete within `--request-headers-timeout`.
    case requestHeadersTimeout = "request_headers_timeout"
    /// A request body that paused longer than `--client-body-timeout`.
    case clientBodyTimeout = "client_body_timeout"
    /// Answers that made no progress to the client for `--send-timeout`.
    case sendTimeout = "send_timeout"
    /// An HTTP/2 connection error (the gateway sent GOAWAY with an error code).
    case protocolError = "protocol_error"
}

/// The gateway's metrics, exposed on the admin port's `/metrics` in Prometheus' text format.
///
/// The gateway records through swift-metrics' API into a Prometheus registry of its own (no global
/// bootstrap, so several gateways, or tests, in one process keep separate figures). Handles per
/// label set are created once and cached: recording on the request path is a dictionary lookup
/// under a lock and an atomic add.
public final class GatewayMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    private struct AnswerKey: Hashable {
        var status: Int
        var outcome: RequestOutcome
    }

    /// One linked service's series: its answer counters and, once it made a Lambda call, its
    /// latency histogram. One lookup and one lock per request find both.
    private struct ServiceSeries {
        var answers: [AnswerKey: CoreMetrics.Counter] = [:]
        var lambdaCalls: CoreMetrics.Timer?

        /// The handles for one answer, made the first time they are needed.
        mutating func handles(_ key: AnswerKey, service: String, timed: Bool, factory: PrometheusMetricsFactory) -> (CoreMetrics.Counter, CoreMetrics.Timer?) {
            if timed && lambdaCalls == nil {
                lambdaCalls = CoreMetrics.Timer(label: "lambda_gateway_lambda_call_duration_seconds", dimensions: [("service", service)], factory: factory)
            }
            if let counter = answers[key] { return (counter, lambdaCalls) }
            let counter = CoreMetrics.Counter(
                label: "lambda_gateway_requests_total",
                dimensions: [("service", service), ("status", String(key.status)), ("outcome", key.outcome.rawValue)],
                factory: factory
            )
            answers[key] = counter
            return (counter, lambdaCalls)
        }
    }

    private let services = Mutex<[String: ServiceSeries]>([:])
    private let watchErrors = Mutex<[String: CoreMetrics.Counter]>([:])
    private let handshakeFailures: [HandshakeFailure: CoreMetrics.Counter]
    private let snapshotVersion: CoreMetrics.Gauge
    private let snapshotAge: CoreMetrics.Gauge
    private let servicesServed: CoreMetrics.Gauge
    private let servicesNotServed: [NotServedReason.Kind: CoreMetrics.Gauge]
    private let requestsInFlight: CoreMetrics.Gauge
    private let connectionsOpen: CoreMetrics.Gauge
    private let connectionsClosed: [ConnectionClosure: CoreMetrics.Counter]
    private let heldAnswers = ManagedAtomic(0)
    private let heldAnswersPeak = ManagedAtomic(0)
    private let tracksPeak = ManagedAtomic(false)
    private let heldAnswerBytesGauge: CoreMetrics.Gauge

    /// Lambda call latency buckets: a warm function answers in milliseconds, a cold start or a
    /// slow function takes seconds, and the longest Lambda timeout is 15 minutes.
    static let lambdaCallBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900),
    ]

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["lambda_gateway_lambda_call_duration_seconds"] = Self.lambdaCallBuckets
        self.factory = factory
        handshakeFailures = Dictionary(
            uniqueKeysWithValues: HandshakeFailure.allCases.map {
                ($0, CoreMetrics.Counter(label: "lambda_gateway_tls_handshake_failures_total", dimensions: [("reason", $0.label)], factory: factory))
            }
        )
        snapshotVersion = CoreMetrics.Gauge(label: "lambda_gateway_snapshot_version", factory: factory)
        snapshotAge = CoreMetrics.Gauge(label: "lambda_gateway_snapshot_age_seconds", factory: factory)
        servicesServed = CoreMetrics.Gauge(label: "lambda_gateway_services_served", factory: factory)
        servicesNotServed = Dictionary(
            uniqueKeysWithValues: NotServedReason.Kind.allCases.map {
                ($0, CoreMetrics.Gauge(label: "lambda_gateway_services_not_served", dimensions: [("reason", $0.rawValue)], factory: factory))
            }
        )
        requestsInFlight = CoreMetrics.Gauge(label: "lambda_gateway_requests_in_flight", factory: factory)
        connectionsOpen = CoreMetrics.Gauge(label: "lambda_gateway_connections_open", factory: factory)
        heldAnswerBytesGauge = CoreMetrics.Gauge(label: "lambda_gateway_held_answer_bytes", factory: factory)
        connectionsClosed = Dictionary(
            uniqueKeysWithValues: ConnectionClosure.allCases.map {
                ($0, CoreMetrics.Counter(label: "lambda_gateway_connections_closed_total", dimensions: [("reason", $0.rawValue)], factory: factory))
            }
        )
    }

    /// Answer bytes held for clients across all connections changed by `delta` (Lambda answers
    /// reserved or being read, answers written and not yet taken by the socket).
    public func heldAnswerBytesChanged(by delta: Int) {
        guard delta != 0 else { return }
        let now = heldAnswers.wrappingIncrementThenLoad(by: delta, ordering: .relaxed)
        // The peak only when a test asked for it (`resetHeldAnswerBytesPeak`): one atomic add is
        // what the request path pays otherwise.
        guard tracksPeak.load(ordering: .relaxed) else { return }
        var peak = heldAnswersPeak.load(ordering: .relaxed)
        while now > peak {
            let (exchanged, current) = heldAnswersPeak.compareExchange(expected: peak, desired: now, ordering: .relaxed)
            if exchanged { break }
            peak = current
        }
    }

    /// Answer bytes held for clients now, and the most held at once since the last `resetHeldAnswerBytesPeak`.
    public var heldAnswerBytes: (now: Int, peak: Int) {
        (heldAnswers.load(ordering: .relaxed), heldAnswersPeak.load(ordering: .relaxed))
    }

    /// Starts (or restarts) tracking the peak of held answer bytes, from what is held now.
    public func resetHeldAnswerBytesPeak() {
        tracksPeak.store(true, ordering: .relaxed)
        heldAnswersPeak.store(heldAnswers.load(ordering: .relaxed), ordering: .relaxed)
    }

    /// The gateway closed a client connection itself, for `reason`.
    public func connectionClosed(_ reason: ConnectionClosure) {
        connectionsClosed[reason]?.increment()
    }

    /// One request answered, by the linked service it was for, with the duration of its Invoke call
    /// (sending to the whole answer read, whatever its result) when it made one.
    public func requestCompleted(service: String, status: Int, outcome: RequestOutcome, lambdaCall: Duration? = nil) {
        let key = AnswerKey(status: status, outcome: outcome)
        let factory = self.factory
        let (counter, timer) = services.withLock { all in
            all[service, default: ServiceSeries()].handles(key, service: service, timed: lambdaCall != nil, factory: factory)
        }
        counter.increment()
        if let lambdaCall, let timer {
            let (seconds, attoseconds) = lambdaCall.components
            timer.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        }
    }

    public func handshakeFailed(_ reason: HandshakeFailure) {
        handshakeFailures[reason]?.increment()
    }

    /// A Consul watch request failed (the gateway keeps its last answer); `watch` names the
    /// endpoint without per-service parts, so the label set stays small.
    public func consulWatchFailed(_ watch: String) {
        let counter = watchErrors.withLock { counters in
            if let counter = counters[watch] { return counter }
            let counter = CoreMetrics.Counter(label: "lambda_gateway_consul_watch_errors_total", dimensions: [("watch", watch)], factory: factory)
            counters[watch] = counter
            return counter
        }
        counter.increment()
    }

    /// The Prometheus text for `/metrics`; the gauges are read from `snapshot` at this moment.
    public func exposition(snapshot: GatewaySnapshot, inFlight: Int, openConnections: Int = 0, now: Date = Date()) -> String {
        snapshotVersion.record(Int64(snapshot.version))
        snapshotAge.record(snapshot.version > 0 ? max(0, now.timeIntervalSince(snapshot.createdAt)) : 0)
        servicesServed.record(snapshot.services.count)
        var notServed: [NotServedReason.Kind: Int] = [:]
        for reason in snapshot.notServed.values { notServed[reason.kind, default: 0] += 1 }
        for (kind, gauge) in servicesNotServed { gauge.record(notServed[kind] ?? 0) }
        requestsInFlight.record(inFlight)
        connectionsOpen.record(openConnections)
        heldAnswerBytesGauge.record(heldAnswers.load(ordering: .relaxed))
        return registry.emitToString()
    }
}

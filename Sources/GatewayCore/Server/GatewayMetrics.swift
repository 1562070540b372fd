import Atomics
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

/// How a streamed answer (`RESPONSE_STREAM`) ended: the `result` label of
/// `lambda_gateway_streamed_responses_total`.
public enum StreamedResult: String, Sendable, CaseIterable {
    /// Every byte the function wrote went to the client, and the response ended normally.
    case complete
    /// It broke off after its head was sent: the client saw an incomplete response.
    case incomplete
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

/// Why an access-log line was not written: the `reason` label of
/// `lambda_gateway_access_log_lines_dropped_total`.
public enum AccessLogDrop: String, Sendable, CaseIterable {
    /// The sink was slower than the traffic and the line buffer was full (requests never wait).
    case sinkBehind = "sink_behind"
    /// The sink could not be opened or written (a file in a missing directory, a full disk).
    case sinkFailed = "sink_failed"
    /// A listener line over its rate limit (refused connections, which a scan can make by the thousand).
    case rateLimited = "rate_limited"
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

/// The gateway's metrics, exposed on the admin port's `/metrics` in Prometheus' text format, every
/// family with `# HELP` and `# TYPE` and named by Prometheus' naming guide (base units, `_total`).
/// The list, with what each means, is in the README's Observability section.
///
/// Counters live in a Prometheus registry of the gateway's own (no global bootstrap, so several
/// gateways, or tests, in one process keep separate figures); the request histograms are the
/// gateway's own lock-free `LatencyHistogram`s. A connection holds its service's `ServiceMetrics`,
/// so recording a request looks nothing up by name (the cost is in BENCHMARKS.md, "What
/// observability costs"). Gauges are read when `/metrics` is scraped (`GatewayMetrics+Exposition`).
public final class GatewayMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    /// One finished request, as `/metrics` counts it.
    public struct RequestRecord: Sendable {
        public var service: String
        public var status: Int
        public var outcome: RequestOutcome
        /// First request byte to last response byte, in nanoseconds.
        public var durationNanoseconds: Int?
        /// The Invoke call, when one was made, in nanoseconds.
        public var lambdaCallNanoseconds: Int?
        /// Why the call failed, when it did: an AWS error type, `Unhandled`/`Handled`, or one of the
        /// gateway's own (`LambdaErrorType`).
        public var lambdaErrorType: LambdaErrorType?
        public var requestBodyBytes: Int
        public var responseBodyBytes: Int
        /// A streamed answer's end (nil: a buffered one).
        public var streamed: StreamedResult?

        public init(
            service: String, status: Int, outcome: RequestOutcome, durationNanoseconds: Int? = nil, lambdaCallNanoseconds: Int? = nil, lambdaErrorType: LambdaErrorType? = nil,
            requestBodyBytes: Int = 0, responseBodyBytes: Int = 0, streamed: StreamedResult? = nil
        ) {
            self.streamed = streamed
            self.service = service
            self.status = status
            self.outcome = outcome
            self.durationNanoseconds = durationNanoseconds
            self.lambdaCallNanoseconds = lambdaCallNanoseconds
            self.lambdaErrorType = lambdaErrorType
            self.requestBodyBytes = requestBodyBytes
            self.responseBodyBytes = responseBodyBytes
        }

        public init(
            service: String, status: Int, outcome: RequestOutcome, duration: Duration?, lambdaCall: Duration? = nil, lambdaErrorType: LambdaErrorType? = nil, requestBodyBytes: Int = 0,
            responseBodyBytes: Int = 0
        ) {
            self.init(
                service: service, status: status, outcome: outcome, durationNanoseconds: duration?.nanosecondsClamped, lambdaCallNanoseconds: lambdaCall?.nanosecondsClamped,
                lambdaErrorType: lambdaErrorType, requestBodyBytes: requestBodyBytes, responseBodyBytes: responseBodyBytes
            )
        }
    }

    private let services = Mutex<[String: ServiceMetrics]>([:])
    private let watchErrors = Mutex<[String: Counter]>([:])
    private let handshakeFailures: [HandshakeFailure: Counter]
    private let connectionsClosed: [ConnectionClosure: Counter]
    private let accessLogLines: Counter
    private let accessLogDropped: [AccessLogDrop: Counter]
    let heldAnswers = ManagedAtomic(0)
    private let heldAnswersPeak = ManagedAtomic(0)
    private let tracksPeak = ManagedAtomic(false)
    /// Consul watches and when each last got an answer (`lambda_gateway_consul_watch_staleness_seconds`).
    public let consulWatches = ConsulWatchFreshness()
    /// What `/metrics` reads from the rest of the process when it is scraped.
    public let sources = Mutex(ExpositionSources())
    /// The roots' expiries, for the roots they were read from.
    let rootExpiryCache = Mutex<(pems: [String], expiries: [(serial: String, notAfter: Date)])?>(nil)

    /// End-to-end request buckets: 0.5 ms (an answer the gateway gives itself) to 30 s.
    static let requestBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
    ]

    /// Lambda call latency buckets: a warm function answers in milliseconds, a cold start or a
    /// slow function takes seconds, and the longest Lambda timeout is 15 minutes.
    static let lambdaCallBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900),
    ]

    public init() {
        let registry = self.registry
        handshakeFailures = Dictionary(
            uniqueKeysWithValues: HandshakeFailure.allCases.map {
                ($0, registry.counter(Family.handshakeFailures, labels: [("reason", $0.label)], help: Help.handshakeFailures))
            }
        )
        connectionsClosed = Dictionary(
            uniqueKeysWithValues: ConnectionClosure.allCases.map {
                ($0, registry.counter(Family.connectionsClosed, labels: [("reason", $0.rawValue)], help: Help.connectionsClosed))
            }
        )
        accessLogLines = registry.counter(Family.accessLogLines, help: Help.accessLogLines)
        accessLogDropped = Dictionary(
            uniqueKeysWithValues: AccessLogDrop.allCases.map {
                ($0, registry.counter(Family.accessLogDropped, labels: [("reason", $0.rawValue)], help: Help.accessLogDropped))
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

    /// The series of `service`, made on first use. A connection asks once and keeps them.
    public func service(_ service: String) -> ServiceMetrics {
        let registry = self.registry
        return services.withLock { all in
            if let series = all[service] { return series }
            let series = ServiceMetrics(service: service, registry: registry)
            all[service] = series
            return series
        }
    }

    /// Every service's series, by name.
    var allServices: [ServiceMetrics] {
        services.withLock { Array($0.values) }.sorted { $0.service < $1.service }
    }

    /// One request answered.
    public func requestCompleted(_ record: RequestRecord) {
        service(record.service).record(record)
    }

    public func handshakeFailed(_ reason: HandshakeFailure) {
        handshakeFailures[reason]?.increment()
    }

    /// Access-log lines handed to the sink.
    public func accessLogLinesWritten(_ count: Int) {
        accessLogLines.increment(by: Int64(count))
    }

    /// Access-log lines not written, and why.
    public func accessLogLinesDropped(_ count: Int, _ reason: AccessLogDrop) {
        accessLogDropped[reason]?.increment(by: Int64(count))
    }

    /// A Consul watch request failed (the gateway keeps its last answer); `watch` names the
    /// endpoint without per-service parts, so the label set stays small.
    public func consulWatchFailed(_ watch: String) {
        let registry = self.registry
        let counter = watchErrors.withLock { counters in
            if let counter = counters[watch] { return counter }
            let counter = registry.counter(Family.consulWatchErrors, labels: [("watch", watch)], help: Help.consulWatchErrors)
            counters[watch] = counter
            return counter
        }
        counter.increment()
    }
}

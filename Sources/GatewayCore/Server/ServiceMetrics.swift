import Atomics
import Prometheus
import Synchronization

/// One linked service's request series. Made when the first connection for the service opens;
/// the connection keeps it, so recording a request looks nothing up by name: two histogram
/// records (no lock), a short scan for the answer's counter under an uncontended lock, and a few
/// atomic adds.
public final class ServiceMetrics: Sendable {
    let service: String
    let requestDuration: LatencyHistogram
    /// Made on the service's first Lambda call (a service that never calls Lambda shows none).
    let lambdaCalls = ManagedAtomicLazyReference<LatencyHistogram>()
    private let requestBytes: Counter
    private let responseBytes: Counter
    private let registry: PrometheusCollectorRegistry
    private let counters = Mutex(Counters())

    private struct AnswerKey: Equatable {
        var status: Int
        var outcome: RequestOutcome
    }

    /// The counters with label values beyond the service's, made on first use. A service sees a
    /// handful of statuses and error types, so a list scanned in order beats hashing.
    private struct Counters {
        var answers = CounterList<AnswerKey>()
        var lambdaErrors = CounterList<LambdaErrorType>()
        /// Made on the service's first streamed answer.
        var streamed = CounterList<StreamedResult>()
        var streamedBytes: Counter?
    }

    /// Counters by a label value, scanned in order, each made by `make` on first use.
    private struct CounterList<Key: Equatable> {
        private var entries: [(key: Key, counter: Counter)] = []

        mutating func counter(_ key: Key, make: () -> Counter) -> Counter {
            if let found = entries.first(where: { $0.key == key })?.counter { return found }
            let made = make()
            entries.append((key, made))
            return made
        }
    }

    init(service: String, registry: PrometheusCollectorRegistry) {
        self.service = service
        self.registry = registry
        requestDuration = LatencyHistogram(buckets: GatewayMetrics.requestBuckets)
        requestBytes = registry.counter(Family.requestBytes, labels: [("service", service)], help: Help.requestBytes)
        responseBytes = registry.counter(Family.responseBytes, labels: [("service", service)], help: Help.responseBytes)
    }

    func record(_ record: GatewayMetrics.RequestRecord) {
        let (answers, errors) = counters(AnswerKey(status: record.status, outcome: record.outcome), error: record.lambdaErrorType)
        answers.increment()
        errors?.increment()
        if let duration = record.durationNanoseconds { requestDuration.record(nanoseconds: duration) }
        if let lambdaCall = record.lambdaCallNanoseconds {
            (lambdaCalls.load() ?? lambdaCalls.storeIfNilThenLoad(LatencyHistogram(buckets: GatewayMetrics.lambdaCallBuckets))).record(nanoseconds: lambdaCall)
        }
        if record.requestBodyBytes > 0 { requestBytes.increment(by: Int64(record.requestBodyBytes)) }
        if record.responseBodyBytes > 0 { responseBytes.increment(by: Int64(record.responseBodyBytes)) }
        if let result = record.streamed { recordStream(result, bytes: record.responseBodyBytes) }
    }

    private func recordStream(_ result: StreamedResult, bytes: Int) {
        let (answers, sent) = counters.withLock { counters in
            let answers = counters.streamed.counter(result) {
                registry.counter(Family.streamedResponses, labels: [("service", service), ("result", result.rawValue)], help: Help.streamedResponses)
            }
            let sent = counters.streamedBytes ?? registry.counter(Family.streamedBytes, labels: [("service", service)], help: Help.streamedBytes)
            counters.streamedBytes = sent
            return (answers, sent)
        }
        answers.increment()
        if bytes > 0 { sent.increment(by: Int64(bytes)) }
    }

    /// The counter of `key`, and of `error` when there is one.
    private func counters(_ key: AnswerKey, error: LambdaErrorType?) -> (Counter, Counter?) {
        counters.withLock { counters in
            let answers = counters.answers.counter(key) {
                registry.counter(Family.requests, labels: [("service", service), ("status", String(key.status)), ("outcome", key.outcome.rawValue)], help: Help.requests)
            }
            guard let error else { return (answers, nil) }
            let errors = counters.lambdaErrors.counter(error) {
                registry.counter(Family.lambdaErrors, labels: [("service", service), ("error_type", error.rawValue)], help: Help.lambdaErrors)
            }
            return (answers, errors)
        }
    }
}

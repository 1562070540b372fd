import Atomics
import Prometheus

/// A Prometheus histogram of durations that costs the request path one short bucket search and two
/// relaxed atomic adds: no lock, no floating point, nothing allocated (swift-prometheus's
/// `Histogram` takes a lock and updates every bucket at or above the value, cumulatively, on each
/// record). Buckets are counted apart here and summed into Prometheus' cumulative `le` series
/// when `/metrics` is scraped.
final class LatencyHistogram: Sendable {
    /// Upper bounds in nanoseconds, ascending (`le`, inclusive).
    private let bounds: [Int]
    /// The `le` label of each bound, as swift-prometheus writes a `Duration` (`0.0005`, `1.0`).
    private let boundLabels: [String]
    /// One count per bound, and one more for values above the last (`+Inf`).
    private let counts: [ManagedAtomic<Int>]
    /// In microseconds: nanoseconds would wrap after 292 years of summed durations, which many
    /// concurrent long calls reach in months.
    private let sumMicroseconds = ManagedAtomic(0)

    init(buckets: [Duration]) {
        precondition(zip(buckets, buckets.dropFirst()).allSatisfy { $0 < $1 }, "histogram buckets must ascend")
        bounds = buckets.map(\.nanosecondsClamped)
        boundLabels = buckets.map(\.bucketRepresentation)
        counts = (0...buckets.count).map { _ in ManagedAtomic(0) }
    }

    func record(nanoseconds: Int) {
        var index = 0
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        counts[index].wrappingIncrement(ordering: .relaxed)
        sumMicroseconds.wrappingIncrement(by: nanoseconds / 1000, ordering: .relaxed)
    }

    /// The cumulative `le` buckets (`+Inf` last), the sum in seconds and the count, as read now.
    /// A request recorded while this reads may show in its bucket and not yet in the sum; `_count`
    /// and `+Inf` always agree.
    var cumulative: (buckets: [(le: String, count: Int)], sumSeconds: Double, count: Int) {
        var running = 0
        var buckets: [(le: String, count: Int)] = []
        buckets.reserveCapacity(counts.count)
        for (index, count) in counts.enumerated() {
            running += count.load(ordering: .relaxed)
            buckets.append((index < boundLabels.count ? boundLabels[index] : "+Inf", running))
        }
        return (buckets, Double(sumMicroseconds.load(ordering: .relaxed)) / 1e6, running)
    }
}

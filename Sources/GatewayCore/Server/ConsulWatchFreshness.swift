import Synchronization

/// When each Consul watch last got an answer from Consul, changed or not (a blocking query answers
/// at least once per wait): `/metrics` shows, per endpoint, the seconds since the least recent
/// answer among that endpoint's watches. A watch that never answered counts from its start; a
/// watch that ended (its service unlinked) no longer counts, nor does one the token may not read
/// (a 403, which retries by design and is shown as `intentions_forbidden`) until it answers again.
public final class ConsulWatchFreshness: Sendable {
    private struct Watch {
        var endpoint: String
        /// Nil while the watch is refused.
        var lastAnswer: ContinuousClock.Instant?
    }

    private let watches = Mutex<(nextID: Int, byID: [Int: Watch])>((0, [:]))

    public init() {}

    /// One watch's handle: `answered` on each answer, `ended` when the watch stops.
    public struct Token: Sendable {
        let id: Int
        let freshness: ConsulWatchFreshness

        public func answered(now: ContinuousClock.Instant = .now) {
            freshness.watches.withLock { $0.byID[id]?.lastAnswer = now }
        }

        /// The watch is refused (403): it does not count until its next answer.
        public func refused() {
            freshness.watches.withLock { $0.byID[id]?.lastAnswer = nil }
        }

        public func ended() {
            _ = freshness.watches.withLock { $0.byID.removeValue(forKey: id) }
        }
    }

    /// A watch of `endpoint` (a path without per-service parts) starts now.
    public func started(_ endpoint: String, now: ContinuousClock.Instant = .now) -> Token {
        let id = watches.withLock { watches in
            watches.nextID += 1
            watches.byID[watches.nextID] = Watch(endpoint: endpoint, lastAnswer: now)
            return watches.nextID
        }
        return Token(id: id, freshness: self)
    }

    /// Seconds since the least recent answer, per endpoint with a running watch.
    public func staleness(now: ContinuousClock.Instant = .now) -> [String: Double] {
        let oldest = watches.withLock { watches in
            watches.byID.values.reduce(into: [String: ContinuousClock.Instant]()) { oldest, watch in
                guard let last = watch.lastAnswer else { return }
                oldest[watch.endpoint] = min(oldest[watch.endpoint] ?? last, last)
            }
        }
        return oldest.mapValues { instant in
            let (seconds, attoseconds) = (now - instant).components
            return max(0, Double(seconds) + Double(attoseconds) / 1e18)
        }
    }
}

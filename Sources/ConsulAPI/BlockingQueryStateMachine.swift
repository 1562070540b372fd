/// The rules of one blocking-query watch (docs/ARCHITECTURE.md, Configuration: the snapshot flow), without I/O: which `index` to
/// send, how long to wait before sending, and what an answer or an error does to the state.
///
/// Time and randomness are injected, so every rule is testable. A time is a `ContinuousClock.Instant`
/// (the clock the watch sleeps on) and a span is a `Duration`: the two cannot be mixed up, and a test
/// builds its instants from any origin (`origin + .seconds(5)`) without waiting.
public struct BlockingQueryStateMachine: Sendable {
    public struct Policy: Sendable, Hashable {
        /// `wait` of each blocking request (default 5 min, Consul caps it at 10 min).
        public var wait: Duration
        /// Token bucket: capacity (tokens), and the time to earn one token.
        public var burst: Double
        public var refillInterval: Duration
        /// Backoff on errors: attempt n waits a random time in [d/2, d], d = min(maximum, base × 2^(n−1)).
        public var baseBackoff: Duration
        public var maximumBackoff: Duration

        public init(
            wait: Duration = .seconds(300),
            burst: Double = 2,
            refillInterval: Duration = .seconds(5),
            baseBackoff: Duration = .seconds(1),
            maximumBackoff: Duration = .seconds(30)
        ) {
            self.wait = min(wait, .seconds(600))
            self.burst = burst
            self.refillInterval = refillInterval
            self.baseBackoff = baseBackoff
            self.maximumBackoff = maximumBackoff
        }

        /// The HTTP read timeout of a blocking request: `wait + wait/16 + 10 s` (the agent adds jitter).
        public var readTimeout: Duration { wait + wait / 16 + .seconds(10) }
    }

    /// The next request: `index`/`wait` to send (both `nil` for an immediate answer), after `delay`.
    public struct Request: Sendable, Hashable {
        public var index: UInt64?
        public var wait: Duration?
        public var delay: Duration

        public init(index: UInt64?, wait: Duration?, delay: Duration) {
            self.index = index
            self.wait = wait
            self.delay = delay
        }
    }

    public enum AnswerError: Error, Hashable {
        /// A blocking endpoint answered without `X-Consul-Index`.
        case missingIndex
    }

    public let policy: Policy
    public private(set) var index: UInt64 = 0
    public private(set) var consecutiveFailures = 0
    private var tokens: Double
    /// `nil` until the first request, which takes no token.
    private var tokensCountedAt: ContinuousClock.Instant?
    private var retryAfter: Duration?

    public init(policy: Policy = Policy()) {
        self.policy = policy
        self.tokens = policy.burst
    }

    /// The request to send next, as of `now`. `random` is a value in [0, 1] that places a backoff
    /// within its jitter range (`0`: the shortest wait, `1`: the longest).
    public mutating func nextRequest(now: ContinuousClock.Instant, random: () -> Double = { Double.random(in: 0...1) }) -> Request {
        var delay = Duration.zero
        if let counted = tokensCountedAt {
            tokens = min(policy.burst, tokens + (now - counted) / policy.refillInterval)
            if tokens >= 1 {
                tokens -= 1
            } else {
                delay = policy.refillInterval * (1 - tokens)
                tokens = 0
            }
        }
        // The very first request takes no token; from then on the bucket is counted.
        tokensCountedAt = now + delay
        if consecutiveFailures > 0 {
            let exponent = min(consecutiveFailures - 1, 30)
            let ceiling = min(policy.maximumBackoff, policy.baseBackoff * (1 << exponent))
            let jittered = ceiling / 2 + (ceiling / 2) * min(max(random(), 0), 1)
            delay = max(delay, jittered, retryAfter ?? .zero)
        }
        guard index > 0 else { return Request(index: nil, wait: nil, delay: delay) }
        return Request(index: index, wait: policy.wait, delay: delay)
    }

    /// An answer arrived with `X-Consul-Index` `newIndex`. A backwards index restarts from 0 (the
    /// answer is still current and is delivered); the index is never kept at 0.
    public mutating func answered(newIndex: UInt64?) throws(AnswerError) {
        guard let newIndex else {
            failed(retryAfter: nil)
            throw .missingIndex
        }
        consecutiveFailures = 0
        retryAfter = nil
        index = newIndex < index ? 0 : max(newIndex, 1)
    }

    /// An error (status, connection, decoding): nothing is delivered, the index stays.
    public mutating func failed(retryAfter: Duration?) {
        consecutiveFailures += 1
        self.retryAfter = retryAfter
    }

    /// Start over with an immediate query (e.g. a leaf watch after the roots changed).
    public mutating func reset() {
        index = 0
    }
}

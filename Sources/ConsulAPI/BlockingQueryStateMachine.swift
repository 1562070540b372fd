/// The rules of one blocking-query watch (docs/ARCHITECTURE.md, Configuration: the snapshot flow), without I/O: which `index` to
/// send, how long to wait before sending, and what an answer or an error does to the state.
///
/// Time is seconds on a monotonic clock and randomness is injected, so every rule is testable.
public struct BlockingQueryStateMachine: Sendable {
    public struct Policy: Sendable, Hashable {
        /// `wait` of each blocking request (default 5 min, Consul caps it at 10 min).
        public var wait: Duration
        /// Token bucket: capacity, and seconds per token.
        public var burst: Double
        public var refillInterval: Double
        /// Backoff on errors: attempt n waits a random time in [d/2, d], d = min(maximum, base × 2^(n−1)).
        public var baseBackoff: Double
        public var maximumBackoff: Double

        public init(wait: Duration = .seconds(300), burst: Double = 2, refillInterval: Double = 5, baseBackoff: Double = 1, maximumBackoff: Double = 30) {
            self.wait = min(wait, .seconds(600))
            self.burst = burst
            self.refillInterval = refillInterval
            self.baseBackoff = baseBackoff
            self.maximumBackoff = maximumBackoff
        }

        /// The HTTP read timeout of a blocking request: `wait + wait/16 + 10 s` (the agent adds jitter).
        public var readTimeout: Duration { wait + wait / 16 + .seconds(10) }
    }

    /// The next request: `index`/`wait` to send (both `nil` for an immediate answer), after `delay` seconds.
    public struct Request: Sendable, Hashable {
        public var index: UInt64?
        public var wait: Duration?
        public var delay: Double

        public init(index: UInt64?, wait: Duration?, delay: Double) {
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
    private var tokensCountedAt: Double?
    private var retryAfter: Double?

    public init(policy: Policy = Policy()) {
        self.policy = policy
        self.tokens = policy.burst
    }

    public mutating func nextRequest(now: Double, random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }) -> Request {
        var delay = 0.0
        if let counted = tokensCountedAt {
            tokens = min(policy.burst, tokens + (now - counted) / policy.refillInterval)
            if tokens >= 1 {
                tokens -= 1
            } else {
                delay = (1 - tokens) * policy.refillInterval
                tokens = 0
            }
        }
        // The very first request takes no token; from then on the bucket is counted.
        tokensCountedAt = now + delay
        if consecutiveFailures > 0 {
            let exponent = Double(min(consecutiveFailures - 1, 30))
            let ceiling = min(policy.maximumBackoff, policy.baseBackoff * pow2(exponent))
            delay = max(delay, random((ceiling / 2)...ceiling), retryAfter ?? 0)
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
    public mutating func failed(retryAfter: Double?) {
        consecutiveFailures += 1
        self.retryAfter = retryAfter
    }

    /// Start over with an immediate query (e.g. a leaf watch after the roots changed).
    public mutating func reset() {
        index = 0
    }

    private func pow2(_ exponent: Double) -> Double {
        var value = 1.0
        for _ in 0..<Int(exponent) { value *= 2 }
        return value
    }
}

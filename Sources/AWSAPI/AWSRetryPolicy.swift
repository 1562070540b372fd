/// Whether, and when, a failed attempt of an AWS call is tried again: the AWS SDKs' standard mode
/// (exponential backoff with full jitter, capped; a fixed number of attempts), without I/O, so that
/// every decision is testable with a pinned random value.
///
/// Not modelled: the SDKs' retry quota and adaptive mode's client-side rate limiter, which matter for
/// a long-lived process sharing one client across many callers; the registrator makes a bounded
/// number of calls per invocation (`MAX_CONCURRENCY` at a time).
struct AWSRetryPolicy: Sendable, Hashable {
    var maximumAttempts: Int
    var maximumBackoff: Duration
    /// The first retry waits up to this (times a random factor); each further retry doubles it.
    var baseBackoff: Duration = .seconds(1)

    /// What went wrong, as far as retrying is concerned.
    enum Failure: Sendable, Hashable {
        /// 429, or a throttling code: the service asks for less.
        case throttling(retryAfter: Duration?)
        /// 5xx, a transient code, or a request that certainly never reached the server.
        case transient(retryAfter: Duration?)
        /// Anything else: a client error, credentials refused, or a request that may have been
        /// acted on (a retry could do it twice).
        case permanent
    }

    enum Decision: Sendable, Hashable {
        case retry(after: Duration)
        case giveUp
    }

    /// `attempt` is the attempt that just failed (1-based); `remaining` the time left before the
    /// call's deadline; `random` a value in [0, 1).
    func decide(_ failure: Failure, attempt: Int, remaining: Duration, random: Double) -> Decision {
        let retryAfter: Duration?
        switch failure {
        case .permanent: return .giveUp
        case .throttling(let after), .transient(let after): retryAfter = after
        }
        guard attempt < maximumAttempts else { return .giveUp }
        // The server's own `Retry-After` wins over the jittered guess; a wait that would end past the
        // deadline is pointless, since the next attempt could not finish.
        let delay = retryAfter ?? backoff(afterAttempt: attempt, random: random)
        guard delay < remaining else { return .giveUp }
        return .retry(after: delay)
    }

    /// Full jitter: `random × min(maximumBackoff, baseBackoff × 2^(attempt−1))`.
    func backoff(afterAttempt attempt: Int, random: Double) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let ceiling = min(maximumBackoff, baseBackoff * (1 << exponent))
        return ceiling * min(max(random, 0), 1)
    }
}

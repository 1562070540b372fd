import AWSSigV4

import struct Foundation.Date

/// When to use, refresh, or wait for credentials (docs/ARCHITECTURE.md, Credentials). Pure: every event takes `now`.
///
/// Times are `Date`s, not instants of a monotonic clock: what they are compared with, the
/// credentials' `Expiration`, is a wall-clock date that comes from the provider. Spans are `Duration`s.
struct CredentialRefreshStateMachine {
    struct Policy: Sendable {
        /// Refresh in the background when this much or less remains.
        var refreshWindow: Duration = .seconds(165)
        /// Never use credentials this close to expiry.
        var cutoff: Duration = .seconds(15)
        var initialBackoff: Duration = .seconds(2)
        var maximumBackoff: Duration = .seconds(32)
        /// A forced refresh (after an AWS 403) at most this often.
        var forcedRefreshInterval: Duration = .seconds(60)
        /// Credentials that arrive already inside the refresh window are fetched again no sooner
        /// than this after the fetch that brought them.
        var minimumRefreshInterval: Duration = .seconds(1)
    }

    struct Current {
        var credentials: Credentials
        /// When to fetch again instead of following the refresh window: credentials without an
        /// expiration that still go stale (files, metadata), and credentials that arrived already
        /// inside the window (`scheduledRefresh`).
        var refreshAfter: Date?
        /// The last moment they may be used (`cutoff` before their expiration), worked out once:
        /// the request path compares two dates. Nil: no expiration.
        var usableUntil: Date?
    }

    enum RequestAction: Equatable {
        case use(Credentials, startRefresh: Bool)
        /// No usable credentials: wait for the refresh in flight (start it first when asked).
        case wait(startRefresh: Bool)
        /// No usable credentials and no refresh can run now (backing off after failures).
        case fail
    }

    let policy: Policy
    private(set) var current: Current?
    private(set) var isRefreshing = false
    private(set) var consecutiveFailures = 0
    private var retryNotBefore: Date?
    private var lastForcedRefresh: Date?

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    func isUsable(at now: Date) -> Bool {
        guard let current else { return false }
        guard let usableUntil = current.usableUntil else { return true }
        return now < usableUntil
    }

    func needsRefresh(at now: Date) -> Bool {
        guard let due = refreshDue else { return false }
        return now >= due
    }

    /// When the current credentials need a refresh: `.distantPast` when there are none, `nil` when
    /// they never do (no expiration and nothing that makes them stale).
    private var refreshDue: Date? {
        guard let current else { return .distantPast }
        if let refreshAfter = current.refreshAfter { return refreshAfter }
        return current.credentials.expiration.map { $0.adding(.zero - policy.refreshWindow) }
    }

    /// When to fetch again after a fetch at `now` returned credentials expiring at `expiration`;
    /// `nil` when the refresh window decides.
    ///
    /// Credentials that live less than the window (AWS sessions can be 15 minutes, test endpoints
    /// issue 30 s ones) are inside it the moment they arrive: following the window would fetch again
    /// at once, in a loop. They are fetched again after half the time they remain usable (until the
    /// cut-off), so requests keep being signed while the next fetch runs, and a failed one still
    /// has time to be retried with the usual backoff; never sooner than `minimumRefreshInterval`.
    func scheduledRefresh(expiration: Date, at now: Date) -> Date? {
        let remaining = Duration.seconds(expiration.timeIntervalSince(now))
        guard remaining < policy.refreshWindow else { return nil }
        let delay = max((remaining - policy.cutoff) / 2, policy.minimumRefreshInterval)
        return now.adding(delay)
    }

    private func mayStartRefresh(at now: Date) -> Bool {
        !isRefreshing && retryNotBefore.map { now >= $0 } ?? true
    }

    // MARK: Events

    mutating func credentialsRequested(at now: Date) -> RequestAction {
        let start = needsRefresh(at: now) && mayStartRefresh(at: now)
        if start { isRefreshing = true }
        if isUsable(at: now), let current {
            return .use(current.credentials, startRefresh: start)
        }
        return isRefreshing ? .wait(startRefresh: start) : .fail
    }

    /// The background timer fired: start a refresh if one is due.
    mutating func timerFired(at now: Date) -> Bool {
        guard needsRefresh(at: now), mayStartRefresh(at: now) else { return false }
        isRefreshing = true
        return true
    }

    /// An AWS authentication error: refresh now, at most once per `forcedRefreshInterval`.
    mutating func authenticationFailed(at now: Date) -> Bool {
        if let last = lastForcedRefresh, now < last.adding(policy.forcedRefreshInterval) { return false }
        guard !isRefreshing else { return false }
        lastForcedRefresh = now
        isRefreshing = true
        return true
    }

    /// A fetch returned `credentials`; `staleAfter` is how long credentials without an expiration
    /// are used before they are fetched again (`nil`: forever).
    mutating func refreshSucceeded(_ credentials: Credentials, staleAfter: Duration?, at now: Date) {
        let refreshAfter: Date? =
            if let expiration = credentials.expiration {
                scheduledRefresh(expiration: expiration, at: now)
            } else {
                staleAfter.map { now.adding($0) }
            }
        current = Current(credentials: credentials, refreshAfter: refreshAfter, usableUntil: credentials.expiration.map { $0.adding(.zero - policy.cutoff) })
        isRefreshing = false
        consecutiveFailures = 0
        retryNotBefore = nil
    }

    /// The last good credentials stay; the next attempt waits 2 s, doubling up to 32 s.
    mutating func refreshFailed(at now: Date) {
        isRefreshing = false
        consecutiveFailures += 1
        retryNotBefore = now.adding(backoff)
    }

    var backoff: Duration {
        guard consecutiveFailures > 0 else { return .zero }
        let exponent = min(consecutiveFailures - 1, 16)
        return min(policy.initialBackoff * (1 << exponent), policy.maximumBackoff)
    }

    /// When the background timer should next wake: the first time at which `timerFired` starts a
    /// refresh (so a timer that wakes then never finds nothing to do and spins); `nil` when only an
    /// event can make one due (a refresh in flight ends, or credentials that never go stale).
    func nextWake(at now: Date) -> Date? {
        if isRefreshing { return nil }
        guard let due = refreshDue else { return nil }
        return max(due, retryNotBefore ?? due, now)
    }
}

extension Date {
    /// This date moved by `duration` (earlier when it is negative).
    func adding(_ duration: Duration) -> Date {
        addingTimeInterval(duration / .seconds(1))
    }
}

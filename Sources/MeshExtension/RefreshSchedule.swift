import Foundation

/// When the mTLS data is read again (docs/DECISIONS.md D65, D70). Pure: the clock is the caller's.
/// - every `frequency` after the last success;
/// - once the certificate is within 10 minutes of expiring, at once, then every 30 s until a read
///   brings a newer one;
/// - after a failure, 1 s doubling to 60 s (the cached data is kept meanwhile).
/// Timers do not run while Lambda freezes the environment: `isDue` is also asked on every INVOKE.
///
/// Times are `Date`s because the certificate's `notValidAfter` is one, and a frozen environment's
/// monotonic clock may not count the freeze; spans are `Duration`s.
public struct RefreshSchedule: Sendable, Hashable {
    public var frequency: Duration
    public private(set) var lastSuccess: Date
    public private(set) var lastAttempt: Date
    public private(set) var consecutiveFailures = 0
    public private(set) var notValidAfter: Date

    static let expiryWindow: Duration = .seconds(600)
    static let retryInExpiryWindow: Duration = .seconds(30)
    static let firstBackoff: Duration = .seconds(1)
    static let maximumBackoff: Duration = .seconds(60)

    /// After the initial load at `loadedAt`.
    public init(frequency: Duration, loadedAt: Date, notValidAfter: Date) {
        self.frequency = frequency
        lastSuccess = loadedAt
        lastAttempt = loadedAt
        self.notValidAfter = notValidAfter
    }

    /// When the next read is due.
    public var nextAttempt: Date {
        if consecutiveFailures > 0 {
            let backoff = min(Self.firstBackoff * (1 << min(consecutiveFailures - 1, 16)), Self.maximumBackoff)
            return lastAttempt.addingTimeInterval(backoff / .seconds(1))
        }
        let periodic = lastSuccess.addingTimeInterval(frequency / .seconds(1))
        let window = notValidAfter.addingTimeInterval(-(Self.expiryWindow / .seconds(1)))
        guard periodic > window else { return periodic }
        return max(window, lastAttempt.addingTimeInterval(Self.retryInExpiryWindow / .seconds(1)))
    }

    public func isDue(at now: Date) -> Bool {
        now >= nextAttempt
    }

    public mutating func succeeded(at now: Date, notValidAfter: Date) {
        lastSuccess = now
        lastAttempt = now
        consecutiveFailures = 0
        self.notValidAfter = notValidAfter
    }

    public mutating func failed(at now: Date) {
        lastAttempt = now
        consecutiveFailures += 1
    }
}

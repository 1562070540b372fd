import Foundation

/// A condition that did not come true in time.
public struct ConditionTimedOut: Error, CustomStringConvertible {
    public let description: String
}

/// Waits for `condition`, checking it every few milliseconds, and throws after `timeout`. For
/// a state another thread reaches (a server that has counted a connection, a process that has
/// written a line) in place of a fixed sleep: it returns as soon as the state is reached, and a
/// loaded machine only makes it wait longer, not fail.
public func waitUntil(_ what: @autoclosure () -> String, timeout: Duration = .seconds(30), _ condition: () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw ConditionTimedOut(description: "not within \(timeout): \(what())") }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// `waitUntil` for a condition that must be awaited (a `/metrics` scrape over HTTP, an actor's
/// state): asked again every `interval` until it holds, and an error after `timeout`.
public func waitUntilAsync(
    _ what: @autoclosure () -> String, timeout: Duration = .seconds(30), interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw ConditionTimedOut(description: "not within \(timeout): \(what())") }
        try await Task.sleep(for: interval)
    }
}

/// `waitUntil` for a condition that `signal`'s event changes: looked at again on each occurrence,
/// not on a timer. With `recheck`, also that often, for a condition that looks at more than the
/// event changes (a snapshot and the requests that led to it).
public func waitUntil(
    _ what: @autoclosure () -> String, on signal: EventSignal, timeout: Duration = .seconds(30), recheck: Duration? = nil, _ condition: () throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        let seen = signal.count
        if try condition() { return }
        let now = ContinuousClock.now
        guard now < deadline else { throw ConditionTimedOut(description: "not within \(timeout): \(what())") }
        await signal.wait(beyond: seen, until: recheck.map { min(deadline, now + $0) } ?? deadline)
        try Task.checkCancellation()
    }
}

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

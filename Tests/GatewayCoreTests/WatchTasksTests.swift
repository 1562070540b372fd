import Synchronization
import TestSupport
import Testing

@testable import GatewayCore

/// The coordinator's watches are child tasks of one `run()`: a stop cancels one of them, the end of
/// `run()` cancels and awaits all of them, and nothing outlives it.
@Suite struct WatchTasksTests {
    /// What the children did, and a way to wait for it.
    final class Log: Sendable {
        let events = Mutex<[String]>([])
        func record(_ event: String) { events.withLock { $0.append(event) } }
        var all: [String] { events.withLock { $0 } }

        func waitFor(_ event: String) async throws {
            try await waitUntil("\(event), in \(all)") { all.contains(event) }
        }
    }

    /// A child that runs until it is cancelled, and records both.
    static func watch(_ name: String, _ log: Log) -> @Sendable (WatchTasks.Handle) async -> Void {
        { _ in
            log.record("\(name) started")
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let cancelled = Self.parked.withLock { parked in
                        if Task.isCancelled { return true }
                        parked[name] = continuation
                        return false
                    }
                    if cancelled { continuation.resume() }
                }
            } onCancel: {
                Self.parked.withLock { $0.removeValue(forKey: name) }?.resume()
            }
            log.record("\(name) cancelled")
        }
    }

    static let parked = Mutex<[String: CheckedContinuation<Void, Never>]>([:])

    @Test func stopCancelsThatChildAloneAndTheEndOfRunCancelsTheRest() async throws {
        let tasks = WatchTasks()
        let log = Log()
        let runner = Task { await tasks.run() }
        let first = tasks.start(Self.watch("w1", log))
        tasks.start(Self.watch("w2", log))
        try await log.waitFor("w1 started")
        try await log.waitFor("w2 started")

        tasks.stop(first)
        try await log.waitFor("w1 cancelled")
        #expect(!log.all.contains("w2 cancelled"))

        runner.cancel()
        await runner.value
        // `run()` returned only after its last child ended.
        #expect(log.all.contains("w2 cancelled"))
    }

    @Test func aChildIsGivenItsOwnHandleAndHandlesAreNeverReused() async throws {
        let tasks = WatchTasks()
        let runner = Task { await tasks.run() }
        let seen = Mutex<[WatchTasks.Handle]>([])
        var started: [WatchTasks.Handle] = []
        for _ in 0..<3 { started.append(tasks.start { handle in seen.withLock { $0.append(handle) } }) }
        try await waitUntil("three children started") { seen.withLock { $0.count } == 3 }
        #expect(Set(seen.withLock { $0 }) == Set(started))
        #expect(Set(started).count == 3)
        runner.cancel()
        await runner.value
    }

    @Test func stoppingAnEndedOrUnknownChildDoesNothing() async throws {
        let tasks = WatchTasks()
        let log = Log()
        let runner = Task { await tasks.run() }
        let done = tasks.start { _ in log.record("done") }
        try await log.waitFor("done")
        tasks.stop(done)
        tasks.stop(done)
        tasks.start(Self.watch("w3", log))
        try await log.waitFor("w3 started")
        #expect(!log.all.contains("w3 cancelled"))
        runner.cancel()
        await runner.value
        #expect(log.all.contains("w3 cancelled"))
    }

    @Test func aChildStoppedBeforeItStartsNeverRuns() async throws {
        let tasks = WatchTasks()
        let log = Log()
        // Not running yet: the start waits in the queue, and the stop comes first.
        let early = tasks.start { _ in log.record("early ran") }
        tasks.stop(early)
        let runner = Task { await tasks.run() }
        tasks.start { _ in log.record("later ran") }
        try await log.waitFor("later ran")
        #expect(!log.all.contains("early ran"))
        runner.cancel()
        await runner.value
    }
}

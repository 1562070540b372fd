import NIOConcurrencyHelpers

/// Something that happens again and again on another thread (a snapshot published, a request
/// received), counted: a test awaits the next occurrence instead of polling for its effect.
public final class EventSignal: Sendable {
    private struct State {
        var count = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waiters that timed out or were cancelled before they were registered.
        var gone: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// How many times it happened so far.
    public var count: Int { state.withLockedValue { $0.count } }

    /// It happened: every waiter goes on.
    public func record() {
        let waiters = state.withLockedValue { state in
            state.count += 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once `count` is past `seen`, at `deadline`, or when the task is cancelled, whichever
    /// comes first; the caller looks at what it waits for again in every case.
    public func wait(beyond seen: Int, until deadline: ContinuousClock.Instant) async {
        let id = state.withLockedValue { state in
            state.nextID += 1
            return state.nextID
        }
        let timer = Task {
            guard (try? await Task.sleep(until: deadline)) != nil else { return }
            self.release(id)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = state.withLockedValue { state in
                    guard state.gone.remove(id) == nil, state.count <= seen else { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            release(id)
        }
    }

    private func release(_ id: UInt64) {
        let waiter = state.withLockedValue { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                state.gone.insert(id)
                return nil as CheckedContinuation<Void, Never>?
            }
            return waiter
        }
        waiter?.resume()
    }
}

/// A one-time event the test opens: a scripted Lambda or peer holds its answer until then, so the
/// test decides when it comes instead of a delay racing the assertions.
public final class Gate: Sendable {
    private let signal = EventSignal()

    public init() {}

    public var isOpen: Bool { signal.count > 0 }

    public func open() {
        if !isOpen { signal.record() }
    }

    /// Returns once the gate is open, or when the waiting task is cancelled (a client that went away).
    public func wait() async {
        while !isOpen && !Task.isCancelled {
            await signal.wait(beyond: 0, until: .now + .seconds(3600))
        }
    }
}

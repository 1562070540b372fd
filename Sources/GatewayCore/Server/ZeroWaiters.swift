import Synchronization

/// Tasks waiting for a count to reach zero (graceful shutdown: no request in flight, no connection
/// open), woken by the event that brings it there, or by their deadline. Nothing polls.
///
/// The count belongs to its owner, which calls `reachedZero()` each time the count becomes zero:
/// - a count kept in a sequentially consistent atomic may call it on a request's path: unless
///   someone waits it costs one atomic load. The handshake is the usual one of two flags: a waiter
///   registers, then reads the count; the owner changes the count, then reads `hasWaiters`; with
///   every one of these operations sequentially consistent, at least one of them sees the other.
/// - a count kept under a lock calls `reachedZero(locked: true)`, which takes this type's lock
///   whatever the flag says: the two locks order the owner's change and the waiter's registration.
final class ZeroWaiters: Sendable {
    private struct State {
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    private let hasWaiters = Atomic<Bool>(false)

    init() {}

    /// Returns once `isZero()` holds, or at `deadline`, or when the calling task is cancelled (a
    /// shutdown that is no longer graceful: another service of the group failed).
    func wait(until deadline: ContinuousClock.Instant, isZero: @escaping @Sendable () -> Bool) async {
        while !isZero(), ContinuousClock.now < deadline, !Task.isCancelled {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(until: deadline) }
                group.addTask { await self.nextZero(isZero: isZero) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Waiters registered now (tests).
    var registeredCount: Int { state.withLock { $0.waiters.count } }

    /// Wakes every waiter: the owner's count has just become zero.
    func reachedZero(locked: Bool = false) {
        guard locked || hasWaiters.load(ordering: .sequentiallyConsistent) else { return }
        let waiters = state.withLock { state in
            hasWaiters.store(false, ordering: .sequentiallyConsistent)
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Suspends until the next `reachedZero()` (or at once when the count is zero already), or
    /// until the task is cancelled.
    private func nextZero(isZero: @Sendable () -> Bool) async {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let registered = state.withLock { state in
                    guard !Task.isCancelled else { return false }
                    state.waiters[id] = continuation
                    hasWaiters.store(true, ordering: .sequentiallyConsistent)
                    return true
                }
                // Registered first, then read: a count that reached zero before the flag was set
                // is seen here; one that reaches zero after it finds the flag.
                if !registered {
                    continuation.resume()
                } else if isZero() {
                    removeWaiter(id)?.resume()
                }
            }
        } onCancel: {
            removeWaiter(id)?.resume()
        }
    }

    /// The waiter `id` if it is still registered; the flag goes down with the last one.
    private func removeWaiter(_ id: UInt64) -> CheckedContinuation<Void, Never>? {
        state.withLock { state in
            defer { if state.waiters.isEmpty { hasWaiters.store(false, ordering: .sequentiallyConsistent) } }
            return state.waiters.removeValue(forKey: id)
        }
    }
}

import NIOCore
import Synchronization

/// The answer bytes one client connection may hold in memory: Lambda answers being read for it and
/// answers written to it that the client has not read yet.
///
/// A Lambda answer is read whole (up to 6 MB) before it can become a response, so without a bound a
/// client that opens a hundred HTTP/2 streams and never reads makes the gateway hold a hundred
/// answers. With one, an answer whose size does not fit waits unread in the upstream socket (the
/// Invoke client stops reading it) until the client reads what it was already sent, or until the
/// connection closes, and no new request on the connection starts while the budget is spent.
///
/// An answer always fits when nothing else is held, so one answer larger than the limit still goes
/// through, and answers that are being read never wait for each other: only a client that does not
/// read holds the others back.
public final class ResponseBudget: Sendable {
    /// Called once: `true` when the bytes were taken (or the budget is under the limit again),
    /// `false` when the connection closed first.
    public typealias Waiter = @Sendable (Bool) -> Void

    struct State {
        var held = 0
        var closed = false
        /// In arrival order: bytes to take (0: only waiting for the budget to be under the limit).
        var waiters = CircularBuffer<(bytes: Int, waiter: Waiter)>()
        var peak = 0
    }

    public let limit: Int
    private let state = Mutex(State())
    /// Streamed answers in progress for the connection (`LambdaInvokeConfiguration.maximumStreamsPerConnection`).
    let streams = Atomic<Int>(0)
    /// Told every change of `held` (bytes taken, or given back when negative): the gateway's total
    /// across connections.
    private let observer: (@Sendable (Int) -> Void)?

    public init(limit: Int, observer: (@Sendable (Int) -> Void)? = nil) {
        self.limit = limit
        self.observer = observer
    }

    /// Bytes held now.
    public var held: Int { state.withLock { $0.held } }
    /// The most ever held at once (for tests and diagnostics).
    public var peak: Int { state.withLock { $0.peak } }
    /// Whether new requests should wait: as much as the limit is held, or answers already wait
    /// for room (one that does not fit can keep `held` just under the limit).
    public var isSpent: Bool { state.withLock { $0.held >= limit || !$0.waiters.isEmpty } }

    /// Takes `bytes` now if they fit (returns `true`), else queues `waiter`, which is called when
    /// they have been taken or when the connection closes. A closed budget refuses at once.
    public func reserve(_ bytes: Int, orWait waiter: @escaping Waiter) -> Bool {
        let outcome: Bool? = state.withLock { state in
            if state.closed { return false }
            if state.waiters.isEmpty && Self.fits(bytes, in: state, limit: limit) {
                state.take(bytes)
                return true
            }
            state.waiters.append((bytes, waiter))
            return nil
        }
        if outcome == false { waiter(false) }
        if outcome == true, bytes > 0 { observer?(bytes) }
        return outcome ?? false
    }

    /// Calls `waiter` once the budget is under the limit (at once if it is), or with `false` when
    /// the connection closes.
    public func whenAvailable(_ waiter: @escaping Waiter) {
        if reserve(0, orWait: waiter) { waiter(true) }
    }

    /// Takes `bytes` whatever the limit: an answer already in memory on its way to the client.
    public func take(_ bytes: Int) {
        state.withLock { $0.take(bytes) }
        observer?(bytes)
    }

    /// Gives `bytes` back and lets waiters that now fit go on.
    public func release(_ bytes: Int) {
        let (ready, granted) = state.withLock { state -> ([Waiter], Int) in
            state.held -= bytes
            var ready: [Waiter] = []
            var granted = 0
            while !state.closed, let first = state.waiters.first, Self.fits(first.bytes, in: state, limit: limit) {
                state.waiters.removeFirst()
                state.take(first.bytes)
                granted += first.bytes
                ready.append(first.waiter)
            }
            return (ready, granted)
        }
        observer?(granted - bytes)
        for waiter in ready { waiter(true) }
    }

    /// The connection is gone: every waiter is told, and later reservations are refused.
    public func close() {
        let waiting = state.withLock { state -> [Waiter] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters.map(\.waiter)
        }
        for waiter in waiting { waiter(false) }
    }

    /// A waiter for the budget alone (0 bytes) goes on once under the limit; bytes go on when they
    /// fit, or when nothing at all is held (one answer larger than the limit must still pass).
    private static func fits(_ bytes: Int, in state: State, limit: Int) -> Bool {
        bytes == 0 ? state.held < limit : (state.held == 0 || state.held + bytes <= limit)
    }
}

extension ResponseBudget.State {
    mutating func take(_ bytes: Int) {
        held += bytes
        peak = max(peak, held)
    }
}

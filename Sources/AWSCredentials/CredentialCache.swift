import AWSSigV4
import Foundation
import Logging
import Synchronization

/// Credentials for every request, refreshed ahead of expiry in the background (docs/ARCHITECTURE.md, Credentials).
///
/// The hot path is one lock and a date comparison. A request that finds nothing usable waits for the
/// single refresh in flight, up to its timeout, and is then refused: a request is never sent unsigned.
public final class CredentialCache: Sendable {
    private struct State {
        var machine: CredentialRefreshStateMachine
        var waiters: [UInt64: CheckedContinuation<Credentials, any Error>] = [:]
        var nextWaiterID: UInt64 = 0
        var lastError: CredentialsError?
        var providerName: String?
        var refreshes = 0
        var failedRefreshes = 0
        /// Counts the events that can change when the run loop is next due (`changed()`): a refresh
        /// started, finished or failed. The run loop sleeps only while the count is the one it saw.
        var events: UInt64 = 0
        /// The run loop while it sleeps, woken by the next event (or its timer, or cancellation).
        var sleepers: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let chain: CredentialChain
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let state: Mutex<State>
    private let policy: CredentialRefreshStateMachine.Policy

    public convenience init(chain: CredentialChain, logger: Logger, now: @escaping @Sendable () -> Date = Date.init) {
        self.init(chain: chain, policy: .init(), logger: logger, now: now)
    }

    init(chain: CredentialChain, policy: CredentialRefreshStateMachine.Policy, logger: Logger, now: @escaping @Sendable () -> Date = Date.init) {
        self.chain = chain
        self.logger = logger
        self.now = now
        self.policy = policy
        self.state = Mutex(State(machine: CredentialRefreshStateMachine(policy: policy)))
    }

    /// Usable credentials, waiting at most `timeout` for a refresh in flight.
    public func credentials(timeout: Duration = .seconds(5)) async throws(CredentialsError) -> Credentials {
        switch requested() {
        case .use(let credentials, _):
            return credentials
        case .fail:
            // The last refresh's own error says why (a request that found nothing usable may
            // have started that refresh a moment ago, through `usableCredentials`).
            let last = state.withLock { $0.lastError }
            throw noCredentials("refresh is backing off after failures" + (last.map { ": \($0.message)" } ?? ""))
        case .wait:
            return try await waitForRefresh(timeout: timeout)
        }
    }

    /// Usable credentials now, or nil when the caller must wait for a refresh (or be refused): the
    /// same decision as `credentials(timeout:)`, whose wait the caller then enters.
    public func usableCredentials() -> Credentials? {
        guard case .use(let credentials, _) = requested() else { return nil }
        return credentials
    }

    /// The state machine's decision for a request now, with the refresh it asks for started.
    private func requested() -> CredentialRefreshStateMachine.RequestAction {
        let date = now()
        let action = state.withLock { $0.machine.credentialsRequested(at: date) }
        switch action {
        case .use(_, startRefresh: true), .wait(startRefresh: true):
            changed()
            startRefreshTask()
        case .use, .wait, .fail: break
        }
        return action
    }

    /// Tells the cache that AWS rejected the credentials (403): refresh now, at most once a minute.
    public func authenticationFailed() {
        let date = now()
        if state.withLock({ $0.machine.authenticationFailed(at: date) }) {
            logger.info("AWS rejected the credentials; refreshing them now")
            changed()
            startRefreshTask()
        }
    }

    /// The provider that gave the current credentials, for logs and `/config`.
    public var providerName: String? { state.withLock { $0.providerName } }

    /// Keeps the credentials fresh until the task is cancelled. Start it once, at start-up.
    ///
    /// It refreshes when the state machine says one is due, then sleeps until the next due time
    /// (`nextWake`), or until an event moves that time: a refresh a request or an AWS 403 started,
    /// or one that finished or failed (credentials a request fetched are followed from there). With
    /// nothing due and no event, it sleeps without a timer.
    public func run() async {
        while !Task.isCancelled {
            let date = now()
            let (start, wake, seen) = state.withLock { state in
                (state.machine.timerFired(at: date), state.machine.nextWake(at: date), state.events)
            }
            if start {
                await refresh()
                continue
            }
            // `nextWake` is after `date` here: at `date` itself `timerFired` would have started a refresh.
            // Due times are wall-clock dates (credentials expire at one) and the sleep is on the
            // monotonic clock: a cap bounds how late a jump of the wall clock can make a refresh.
            await sleep(for: wake.map { min(.seconds($0.timeIntervalSince(date)), Self.longestSleep) }, unlessEventsAfter: seen)
        }
    }

    /// The longest the run loop sleeps before it reads the wall clock again, when a refresh is due.
    static let longestSleep = Duration.seconds(60)

    /// Sleeps for `delay` (`nil`: until an event), unless the event count moved past `seen`
    /// meanwhile; returns early on the next event or when the task is cancelled.
    private func sleep(for delay: Duration?, unlessEventsAfter seen: UInt64) async {
        await withTaskGroup(of: Void.self) { group in
            if let delay {
                group.addTask { try? await Task.sleep(for: delay) }
            }
            group.addTask { await self.nextEvent(after: seen) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns at the first event after `seen` (at once if there was one), or on cancellation.
    private func nextEvent(after seen: UInt64) async {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Cancellation sets the flag before its handler runs, and the handler takes the lock:
                // either this sees the flag, or the handler finds the continuation registered.
                let resumeNow = state.withLock { state in
                    guard state.events == seen, !Task.isCancelled else { return true }
                    state.sleepers[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: id) }?.resume()
        }
    }

    /// Something that can move the next due time happened: wake the run loop to look again.
    private func changed() {
        let sleepers = state.withLock { state in
            state.events &+= 1
            defer { state.sleepers.removeAll() }
            return Array(state.sleepers.values)
        }
        for sleeper in sleepers { sleeper.resume() }
    }

    /// Whether the run loop is asleep waiting for an event or its timer (for tests).
    var isRunLoopAsleep: Bool { state.withLock { !$0.sleepers.isEmpty } }

    /// Refreshes run so far, and how many of them failed (`/metrics`).
    public var refreshCounts: (attempts: Int, failures: Int) {
        state.withLock { ($0.refreshes, $0.failedRefreshes) }
    }

    // MARK: Refresh

    private func startRefreshTask() {
        Task { await self.refresh() }
    }

    /// Runs the chain once; the state machine has already marked the refresh as in flight.
    private func refresh() async {
        do throws(CredentialsError) {
            let resolved = try await chain.resolve(logger: logger)
            if let remaining = resolved.credentials.remainingLifetime(at: now()), remaining <= policy.cutoff {
                throw CredentialsError(
                    .providerFailed,
                    provider: resolved.provider.name,
                    "returned credentials that expire at \(resolved.credentials.expiration!), too soon to use"
                )
            }
            let staleAfter = resolved.provider.refreshIntervalWithoutExpiration
            let date = now()
            let waiters = state.withLock { state in
                state.machine.refreshSucceeded(resolved.credentials, staleAfter: staleAfter, at: date)
                state.refreshes += 1
                state.providerName = resolved.provider.name
                state.lastError = nil
                defer { state.waiters.removeAll() }
                return Array(state.waiters.values)
            }
            changed()
            logger.info(
                "credentials refreshed",
                metadata: [
                    "provider": "\(resolved.provider.name)", "access_key_id": "\(resolved.credentials.accessKeyID)",
                    "expiration": "\(resolved.credentials.expiration.map { "\($0)" } ?? "none")",
                ]
            )
            for waiter in waiters { waiter.resume(returning: resolved.credentials) }
        } catch {
            let date = now()
            let (waiters, retryIn) = state.withLock { state in
                state.machine.refreshFailed(at: date)
                state.refreshes += 1
                state.failedRefreshes += 1
                state.lastError = error
                defer { state.waiters.removeAll() }
                return (Array(state.waiters.values), state.machine.backoff)
            }
            changed()
            logger.error(
                "credential refresh failed; keeping the last good credentials",
                metadata: ["error": "\(error)", "retry_in_s": "\(retryIn / .seconds(1))"]
            )
            for waiter in waiters { waiter.resume(throwing: noCredentials("\(error)")) }
        }
    }

    private func waitForRefresh(timeout: Duration) async throws(CredentialsError) -> Credentials {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: noCredentials("no credentials within \(timeout)"))
        }
        defer { timer.cancel() }
        do {
            return try await withCheckedThrowingContinuation { continuation in
                let date = now()
                let registration: WaiterRegistration = state.withLock { state in
                    // The refresh may have finished between the first check and now.
                    if !state.machine.isRefreshing {
                        if state.machine.isUsable(at: date), let current = state.machine.current {
                            return .ready(current.credentials)
                        }
                        return .failed(state.lastError.map { "\($0)" } ?? "refresh failed")
                    }
                    state.waiters[id] = continuation
                    return .registered
                }
                switch registration {
                case .ready(let credentials): continuation.resume(returning: credentials)
                case .failed(let reason): continuation.resume(throwing: noCredentials(reason))
                case .registered: break  // resumed by the refresh or by the timer
                }
            }
        } catch let error as CredentialsError {
            throw error
        } catch {
            throw noCredentials("\(error)")
        }
    }

    private enum WaiterRegistration {
        case ready(Credentials)
        case registered
        case failed(String)
    }

    private func noCredentials(_ reason: String) -> CredentialsError {
        CredentialsError(.noCredentials, provider: "cache", "no usable AWS credentials: \(reason)")
    }
}

import AWSSigV4
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import AWSCredentials

/// A provider whose answers a test scripts, counting how often it is asked.
final class ScriptedProvider: CredentialProvider, Sendable {
    let name: String
    let isConfigured: Bool
    private let answers: Mutex<[Result<Credentials, CredentialsError>]>
    private let calls = Mutex(0)
    let delay: Duration

    init(name: String = "scripted", configured: Bool = true, delay: Duration = .zero, answers: [Result<Credentials, CredentialsError>]) {
        self.name = name
        self.isConfigured = configured
        self.delay = delay
        self.answers = Mutex(answers)
    }

    var callCount: Int { calls.withLock { $0 } }

    func fetch() async throws -> Credentials {
        calls.withLock { $0 += 1 }
        if delay > .zero { try await Task.sleep(for: delay) }
        let answer = answers.withLock { answers in answers.count > 1 ? answers.removeFirst() : answers[0] }
        return try answer.get()
    }
}

let failure = CredentialsError(.providerFailed, provider: "scripted", "down")

func key(_ id: String, expiresIn seconds: Double? = nil, from now: Date = Date()) -> Credentials {
    Credentials(accessKeyID: id, secretAccessKey: "s-\(id)", sessionToken: "t", expiration: seconds.map { now.addingTimeInterval($0) })
}

@Suite("Credential chain")
struct CredentialChainTests {
    @Test func firstConfiguredProviderThatAnswersWins() async throws {
        let skipped = ScriptedProvider(name: "skipped", configured: false, answers: [.success(key("SKIP"))])
        let failing = ScriptedProvider(name: "failing", answers: [.failure(failure)])
        let working = ScriptedProvider(name: "working", answers: [.success(key("GOOD"))])
        let later = ScriptedProvider(name: "later", answers: [.success(key("LATER"))])
        let resolved = try await CredentialChain(providers: [skipped, failing, working, later]).resolve(logger: testLogger)
        #expect(resolved.credentials.accessKeyID == "GOOD")
        #expect(resolved.provider.name == "working")
        #expect(skipped.callCount == 0 && failing.callCount == 1 && later.callCount == 0)
    }

    @Test func environmentComesBeforeTheSharedFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.file("credentials", contents: "[default]\naws_access_key_id=FILE\naws_secret_access_key=f\n")
        let chain = CredentialChain.standard(
            environment: ["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "e", "AWS_SHARED_CREDENTIALS_FILE": path, "AWS_EC2_METADATA_DISABLED": "true"],
            httpClient: .shared
        )
        #expect(chain.providers.map(\.name) == ["environment", "shared-credentials-file", "web-identity", "container", "instance-metadata"])
        #expect(try await chain.resolve(logger: testLogger).credentials.accessKeyID == "ENV")
    }

    @Test func nothingConfiguredIsNoCredentials() async {
        let chain = CredentialChain.standard(environment: ["HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"], httpClient: .shared)
        do {
            _ = try await chain.resolve(logger: testLogger)
            Issue.record("expected no credentials")
        } catch {
            #expect(error.code == .noCredentials)
        }
    }
}

@Suite("Credential refresh rules")
struct CredentialRefreshStateMachineTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func firstRequestStartsTheFetchAndWaits() {
        var machine = CredentialRefreshStateMachine()
        let result1 = machine.credentialsRequested(at: start)
        #expect(result1 == .wait(startRefresh: true))
        let result2 = machine.credentialsRequested(at: start)
        #expect(result2 == .wait(startRefresh: false))  // shares the refresh in flight
        machine.refreshSucceeded(key("A", expiresIn: 3600, from: start), staleAfter: .seconds(3600), at: start)
        let result3 = machine.credentialsRequested(at: start)
        #expect(result3 == .use(key("A", expiresIn: 3600, from: start), startRefresh: false))
    }

    @Test func refreshStartsUnder165SecondsAndCredentialsStopAt15() {
        var machine = CredentialRefreshStateMachine()
        _ = machine.credentialsRequested(at: start)
        let credentials = key("A", expiresIn: 600, from: start)
        machine.refreshSucceeded(credentials, staleAfter: nil, at: start)
        #expect(machine.nextWake(at: start) == start.addingTimeInterval(600 - 165))
        let result4 = machine.credentialsRequested(at: start.addingTimeInterval(434))
        #expect(result4 == .use(credentials, startRefresh: false))
        let result5 = machine.credentialsRequested(at: start.addingTimeInterval(436))
        #expect(result5 == .use(credentials, startRefresh: true))
        let result6 = machine.credentialsRequested(at: start.addingTimeInterval(584))
        #expect(result6 == .use(credentials, startRefresh: false))
        let result7 = machine.credentialsRequested(at: start.addingTimeInterval(586))
        #expect(result7 == .wait(startRefresh: false))
    }

    @Test func failuresKeepTheLastGoodAndBackOffFrom2To32Seconds() {
        var machine = CredentialRefreshStateMachine()
        _ = machine.credentialsRequested(at: start)
        let credentials = key("A", expiresIn: 170, from: start)
        machine.refreshSucceeded(credentials, staleAfter: nil, at: start)
        // 10 s later they are inside the 165 s window.
        var now = start.addingTimeInterval(10)
        var delays: [Double] = []
        for _ in 0..<6 {
            let result8 = machine.timerFired(at: now)
            #expect(result8)
            machine.refreshFailed(at: now)
            let result9 = machine.credentialsRequested(at: now)
            #expect(result9 == .use(credentials, startRefresh: false))
            let wake = machine.nextWake(at: now)!
            delays.append(wake.timeIntervalSince(now))
            let result10 = machine.timerFired(at: now.addingTimeInterval(0.5))
            #expect(!result10)
            now = wake
        }
        #expect(delays == [2, 4, 8, 16, 32, 32])
        // Past the 15 s cut-off the last good credentials are no longer used: requests wait for the
        // refresh, and are refused while it backs off.
        let late = start.addingTimeInterval(156)
        let waiting = machine.credentialsRequested(at: late)
        #expect(waiting == .wait(startRefresh: true))
        machine.refreshFailed(at: late)
        let refused = machine.credentialsRequested(at: late.addingTimeInterval(1))
        #expect(refused == .fail)
    }

    /// Remaining lifetime at the fetch → seconds until the next fetch: half the time left before the
    /// 15 s cut-off, at least 1 s; credentials outside the 165 s window follow the window.
    @Test(arguments: [(160.0, 72.5), (30, 7.5), (17, 1), (15.5, 1)] as [(Double, Double)])
    func credentialsArrivingInsideTheWindowAreRefreshedAtHalfTheirUsableLifetime(lifetime: Double, delay: Double) {
        var machine = CredentialRefreshStateMachine()
        _ = machine.credentialsRequested(at: start)
        let credentials = key("A", expiresIn: lifetime, from: start)
        machine.refreshSucceeded(credentials, staleAfter: nil, at: start)
        #expect(machine.nextWake(at: start) == start.addingTimeInterval(delay))
        // Neither a request nor the timer starts a fetch before then.
        let early = start.addingTimeInterval(delay - 0.01)
        let request = machine.credentialsRequested(at: early)
        #expect(!request.startsRefresh)
        let timerEarly = machine.timerFired(at: early)
        #expect(!timerEarly)
        let timerDue = machine.timerFired(at: start.addingTimeInterval(delay))
        #expect(timerDue)
    }

    @Test func credentialsOutsideTheWindowStillFollowIt() {
        var machine = CredentialRefreshStateMachine()
        _ = machine.credentialsRequested(at: start)
        machine.refreshSucceeded(key("A", expiresIn: 900, from: start), staleAfter: .seconds(3600), at: start)
        #expect(machine.nextWake(at: start) == start.addingTimeInterval(900 - 165))
    }

    /// The incident: 30 s container credentials made 35,875 fetches in 25 s, because every fetch
    /// returned credentials already inside the window. Requests every 10 ms and a timer that fires
    /// whenever it is due now make four fetches (at 0, 7.5, 15 and 22.5 s), and every request after
    /// the first fetch is signed.
    @Test func thirtySecondCredentialsAreFetchedAFewTimesIn25Seconds() {
        var machine = CredentialRefreshStateMachine()
        var fetches = 0
        var unsigned = 0
        for step in 0...2500 {
            let now = start.addingTimeInterval(Double(step) / 100)
            var startFetch = machine.timerFired(at: now)
            switch machine.credentialsRequested(at: now) {
            case .use(_, let startRefresh): startFetch = startFetch || startRefresh
            case .wait(let startRefresh):
                startFetch = startFetch || startRefresh
                if step > 0 { unsigned += 1 }
            case .fail: unsigned += 1
            }
            if startFetch {
                fetches += 1
                machine.refreshSucceeded(key("K\(fetches)", expiresIn: 30, from: now), staleAfter: .seconds(3600), at: now)
            }
        }
        #expect(fetches == 4)
        #expect(unsigned == 0)
    }

    @Test func staticCredentialsWithoutExpirationGoStaleAfterTheirInterval() {
        var machine = CredentialRefreshStateMachine()
        _ = machine.credentialsRequested(at: start)
        let credentials = key("FILE")
        machine.refreshSucceeded(credentials, staleAfter: .seconds(3600), at: start)
        let result12 = machine.credentialsRequested(at: start.addingTimeInterval(3599))
        #expect(result12 == .use(credentials, startRefresh: false))
        let result13 = machine.credentialsRequested(at: start.addingTimeInterval(3600))
        #expect(result13 == .use(credentials, startRefresh: true))

        var environment = CredentialRefreshStateMachine()
        _ = environment.credentialsRequested(at: start)
        environment.refreshSucceeded(credentials, staleAfter: nil, at: start)
        #expect(environment.nextWake(at: start) == nil)
        let result14 = environment.credentialsRequested(at: start.addingTimeInterval(1e6))
        #expect(result14 == .use(credentials, startRefresh: false))
    }

    @Test func authenticationFailureForcesARefreshAtMostOncePerMinute() {
        var machine = CredentialRefreshStateMachine()
        _ = machine.credentialsRequested(at: start)
        machine.refreshSucceeded(key("A"), staleAfter: nil, at: start)
        let result15 = machine.authenticationFailed(at: start)
        #expect(result15)
        machine.refreshSucceeded(key("B"), staleAfter: nil, at: start)
        let result16 = machine.authenticationFailed(at: start.addingTimeInterval(59))
        #expect(!result16)
        let result17 = machine.authenticationFailed(at: start.addingTimeInterval(61))
        #expect(result17)
    }
}

extension CredentialRefreshStateMachineTests {
    /// A forced refresh (AWS answered 403) that fails backs off, but the credentials are still far
    /// from their window: once the backoff is over, the timer's next wake is the window, not "now"
    /// (a wake at which the timer finds nothing to start would be a loop that never sleeps).
    @Test func aFailedForcedRefreshWakesTheTimerAtTheWindowNotWhenTheBackoffEnds() {
        var machine = CredentialRefreshStateMachine()
        _ = machine.credentialsRequested(at: start)
        machine.refreshSucceeded(key("A", expiresIn: 3600, from: start), staleAfter: nil, at: start)
        let forced = machine.authenticationFailed(at: start.addingTimeInterval(10))
        #expect(forced)
        machine.refreshFailed(at: start.addingTimeInterval(10))
        let window = start.addingTimeInterval(3600 - 165)
        #expect(machine.nextWake(at: start.addingTimeInterval(10)) == window)
        #expect(machine.nextWake(at: start.addingTimeInterval(20)) == window)
        let early = machine.timerFired(at: start.addingTimeInterval(20))
        #expect(!early)
        let due = machine.timerFired(at: window)
        #expect(due)
    }

    /// `nextWake` is when the timer has work: whatever the state, a timer that fires at that time
    /// starts a refresh, and nothing is due while a refresh is in flight.
    @Test func theTimerAlwaysHasARefreshToStartWhenItWakes() {
        var states: [(String, CredentialRefreshStateMachine, Date)] = []
        states.append(("no credentials yet", CredentialRefreshStateMachine(), start))

        var expiring = CredentialRefreshStateMachine()
        _ = expiring.credentialsRequested(at: start)
        expiring.refreshSucceeded(key("A", expiresIn: 600, from: start), staleAfter: nil, at: start)
        states.append(("credentials that expire", expiring, start))

        var short = CredentialRefreshStateMachine()
        _ = short.credentialsRequested(at: start)
        short.refreshSucceeded(key("A", expiresIn: 30, from: start), staleAfter: nil, at: start)
        states.append(("credentials that arrived inside the window", short, start))

        var stale = CredentialRefreshStateMachine()
        _ = stale.credentialsRequested(at: start)
        stale.refreshSucceeded(key("FILE"), staleAfter: .seconds(3600), at: start)
        states.append(("credentials without an expiration that go stale", stale, start))

        var failing = CredentialRefreshStateMachine()
        _ = failing.credentialsRequested(at: start)
        failing.refreshFailed(at: start)
        failing.refreshFailed(at: start)
        states.append(("no credentials, backing off", failing, start))

        var backingOff = expiring
        _ = backingOff.timerFired(at: start.addingTimeInterval(500))
        backingOff.refreshFailed(at: start.addingTimeInterval(500))
        states.append(("inside the window, backing off", backingOff, start.addingTimeInterval(500)))

        for (name, machine, now) in states {
            guard let wake = machine.nextWake(at: now) else {
                Issue.record("\(name): no wake")
                continue
            }
            #expect(wake >= now, "\(name)")
            var fired = machine
            let started = fired.timerFired(at: wake)
            #expect(started, "\(name): the timer found nothing to do at \(wake)")
            #expect(fired.nextWake(at: wake) == nil, "\(name): a wake while the refresh runs")
        }
    }
}

extension CredentialRefreshStateMachine.RequestAction {
    var startsRefresh: Bool {
        switch self {
        case .use(_, let startRefresh), .wait(let startRefresh): startRefresh
        case .fail: false
        }
    }
}

@Suite("Credential cache")
struct CredentialCacheTests {
    static let fastPolicy = CredentialRefreshStateMachine.Policy(
        refreshWindow: .seconds(1),
        cutoff: .milliseconds(300),
        initialBackoff: .milliseconds(50),
        maximumBackoff: .milliseconds(200)
    )

    @Test func concurrentCallersShareOneRefresh() async throws {
        let provider = ScriptedProvider(delay: .milliseconds(100), answers: [.success(key("A", expiresIn: 3600))])
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: Self.fastPolicy, logger: testLogger)
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<50 { group.addTask { try await cache.credentials().accessKeyID } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(ids == Array(repeating: "A", count: 50))
        #expect(provider.callCount == 1)
        #expect(cache.providerName == "scripted")
    }

    @Test func backgroundRefreshReplacesCredentialsBeforeExpiry() async throws {
        // The cache's clock is the test's: OLD enters the refresh window when the test says so, not
        // when a busy machine gets round to it.
        let start = Date()
        let clock = Mutex(start)
        let provider = ScriptedProvider(answers: [.success(key("OLD", expiresIn: 3, from: start)), .success(key("NEW", expiresIn: 3600, from: start))])
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: Self.fastPolicy, logger: testLogger, now: { clock.withLock { $0 } })
        let runner = Task { await cache.run() }
        defer { runner.cancel() }
        #expect(try await cache.credentials().accessKeyID == "OLD")
        #expect(provider.callCount == 1)
        // 1 s before expiry the timer refreshes, with no request asking for it: the run loop sleeps
        // until then (2 s on its own clock after the fetch) and finds the refresh due.
        clock.withLock { $0 = start.addingTimeInterval(2.5) }
        for _ in 0..<1500 where provider.callCount < 2 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(provider.callCount == 2)
        #expect(try await cache.credentials().accessKeyID == "NEW")
    }

    @Test func failedRefreshKeepsTheLastGoodCredentials() async throws {
        // The cache's clock is the test's: how busy the machine is cannot move GOOD into the window early.
        let start = Date()
        let clock = Mutex(start)
        let provider = ScriptedProvider(answers: [.success(key("GOOD", expiresIn: 5, from: start)), .failure(failure)])
        let policy = CredentialRefreshStateMachine.Policy(
            refreshWindow: .milliseconds(4500),
            cutoff: .milliseconds(300),
            initialBackoff: .milliseconds(50),
            maximumBackoff: .milliseconds(200)
        )
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: policy, logger: testLogger, now: { clock.withLock { $0 } })
        #expect(try await cache.credentials().accessKeyID == "GOOD")
        // Inside the refresh window: the request triggers a refresh that fails; it still gets GOOD.
        clock.withLock { $0 = start.addingTimeInterval(1) }
        #expect(try await cache.credentials().accessKeyID == "GOOD")
        for _ in 0..<500 where provider.callCount < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(provider.callCount == 2)
        #expect(try await cache.credentials().accessKeyID == "GOOD")
    }

    /// The check a request makes without waiting: nothing at first (while it starts the one
    /// fetch that `credentials()` then waits for), the fetched credentials after, and never
    /// expired ones.
    @Test func usableCredentialsAreHandedOutWithoutWaitingOnceFetched() async throws {
        let provider = ScriptedProvider(delay: .milliseconds(50), answers: [.success(key("GOOD", expiresIn: 3600))])
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: Self.fastPolicy, logger: testLogger)
        #expect(cache.usableCredentials() == nil)
        #expect(try await cache.credentials(timeout: .seconds(30)).accessKeyID == "GOOD")
        #expect(provider.callCount == 1)
        #expect(cache.usableCredentials()?.accessKeyID == "GOOD")

        let expiring = CredentialCache(
            chain: CredentialChain(providers: [ScriptedProvider(answers: [.success(key("EXPIRED", expiresIn: -10))])]),
            policy: Self.fastPolicy,
            logger: testLogger
        )
        for _ in 0..<20 {
            #expect(expiring.usableCredentials() == nil)
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func expiredCredentialsAreNeverUsed() async throws {
        let provider = ScriptedProvider(answers: [.success(key("EXPIRED", expiresIn: -10))])
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: Self.fastPolicy, logger: testLogger)
        do {
            let credentials = try await cache.credentials(timeout: .milliseconds(300))
            Issue.record("expired credentials were handed out: \(credentials)")
        } catch {
            #expect(error.code == .noCredentials)
        }
    }

    @Test func noProviderFailsFastWithNoCredentials() async throws {
        let provider = ScriptedProvider(answers: [.failure(failure)])
        let policy = CredentialRefreshStateMachine.Policy(refreshWindow: .seconds(1), cutoff: .milliseconds(300), initialBackoff: .seconds(30), maximumBackoff: .seconds(30))
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: policy, logger: testLogger)
        let clock = ContinuousClock()
        let started = clock.now
        // The failure comes back at once, not at the request's deadline (a minute, so that a busy
        // machine cannot make the two look alike).
        await #expect(throws: CredentialsError.self) { try await cache.credentials(timeout: .seconds(60)) }
        #expect(clock.now - started < .seconds(30))
        // While backing off, requests are refused at once instead of hammering the provider, and
        // the refusal carries the refresh's own error.
        let refusal = await #expect(throws: CredentialsError.self) { try await cache.credentials() }
        #expect(refusal?.message.contains("down") == true, "\(String(describing: refusal))")
        #expect(provider.callCount == 1)
    }

    @Test func slowProviderTimesOutTheWaitingRequest() async throws {
        let provider = ScriptedProvider(delay: .seconds(2), answers: [.success(key("SLOW"))])
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: Self.fastPolicy, logger: testLogger)
        await #expect(throws: CredentialsError.self) { try await cache.credentials(timeout: .milliseconds(100)) }
    }

    @Test func authenticationFailureRefreshesAtOnce() async throws {
        let provider = ScriptedProvider(answers: [.success(key("A")), .success(key("B"))])
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: Self.fastPolicy, logger: testLogger)
        #expect(try await cache.credentials().accessKeyID == "A")
        cache.authenticationFailed()
        // The forced refresh has asked the provider again, and its answer is the one in use.
        try await waitUntil("the forced refresh to finish") { provider.callCount == 2 && cache.usableCredentials()?.accessKeyID == "B" }
        #expect(try await cache.credentials().accessKeyID == "B")
    }

    /// A request starts the first fetch while the run loop sleeps with nothing due (a refresh in
    /// flight has no due time): the fetch's end wakes the loop, which then sleeps until the new
    /// credentials are due and fetches again by itself. A loop that never woke would never fetch.
    @Test func theRunLoopFollowsARefreshARequestStartedAndRefreshesWhenItIsDue() async throws {
        // Valid for 1.5 s from the fetch: due 0.5 s after it (the window is 1 s).
        let provider = GatedProvider(answers: [{ key("FIRST", expiresIn: 1.5, from: $0) }, { key("SECOND", expiresIn: 3600, from: $0) }])
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: Self.fastPolicy, logger: testLogger)
        #expect(cache.usableCredentials() == nil)  // starts the fetch, which waits at the gate
        let runner = Task { await cache.run() }
        defer { runner.cancel() }
        try await waitUntil("the run loop sleeps while the request's refresh runs") { cache.isRunLoopAsleep }
        #expect(cache.refreshCounts.attempts == 0)

        provider.open()
        try await waitUntil("the run loop's own refresh, \(cache.refreshCounts.attempts) so far") { cache.refreshCounts.attempts == 2 }
        let fetches = provider.fetchDates
        #expect(fetches.count == 2)
        // The second fetch is the timer's, at the due time and not before.
        #expect(fetches[1] >= fetches[0].addingTimeInterval(0.5), "\(fetches)")
        #expect(cache.usableCredentials()?.accessKeyID == "SECOND")
    }

    /// The run loop asleep on its timer and on the next event ends as soon as its task is cancelled.
    @Test(.timeLimit(.minutes(1))) func theRunLoopEndsWhenCancelledWhileAsleep() async throws {
        let provider = ScriptedProvider(answers: [.success(key("A", expiresIn: 3600))])
        let cache = CredentialCache(chain: CredentialChain(providers: [provider]), policy: Self.fastPolicy, logger: testLogger)
        let runner = Task { await cache.run() }
        try await waitUntil("the run loop's first fetch") { cache.refreshCounts.attempts == 1 }
        try await waitUntil("the run loop asleep until the credentials are due") { cache.isRunLoopAsleep }
        runner.cancel()
        await runner.value
        #expect(!cache.isRunLoopAsleep)
        #expect(provider.callCount == 1)
    }
}

/// A provider whose fetches wait until the test opens its gate, recording when each one ran;
/// each answer is made at the fetch's time (`answers`, the last one repeated).
final class GatedProvider: CredentialProvider, Sendable {
    let name = "gated"
    let isConfigured = true
    private struct State {
        var isOpen = false
        var waiting: [CheckedContinuation<Void, Never>] = []
        var fetchDates: [Date] = []
    }
    private let state = Mutex(State())
    private let answers: [@Sendable (Date) -> Credentials]

    init(answers: [@Sendable (Date) -> Credentials]) {
        self.answers = answers
    }

    var fetchDates: [Date] { state.withLock { $0.fetchDates } }

    func open() {
        let waiting = state.withLock { state in
            state.isOpen = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func fetch() async throws -> Credentials {
        await withCheckedContinuation { continuation in
            let isOpen = state.withLock { state in
                if !state.isOpen { state.waiting.append(continuation) }
                return state.isOpen
            }
            if isOpen { continuation.resume() }
        }
        let date = Date()
        let count = state.withLock { state in
            state.fetchDates.append(date)
            return state.fetchDates.count
        }
        return answers[min(count, answers.count) - 1](date)
    }
}

import Foundation
import Logging

/// The function's mTLS data from Parameter Store (docs/DECISIONS.md D65, D66): loaded and checked before
/// anything is served, then read again on `RefreshSchedule`. A failed read keeps the cached data;
/// new data becomes a new `TunnelTLS` for new dials (`apply`), open tunnels keep theirs.
actor MeshDataSource {
    typealias Fetch = @Sendable () async throws -> String

    let fetch: Fetch
    let apply: @Sendable (TunnelTLS) -> Void
    let logger: Logger
    let frequency: Duration
    private(set) var current: TunnelTLS?
    private(set) var schedule: RefreshSchedule?
    private var reading: Task<Void, Never>?
    private var timer: Task<Void, Never>?

    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    init(frequency: Duration, logger: Logger, fetch: @escaping Fetch, apply: @escaping @Sendable (TunnelTLS) -> Void) {
        self.frequency = frequency
        self.logger = logger
        self.fetch = fetch
        self.apply = apply
    }

    /// The initial load: up to `attempts` reads, 0.5 s then 1 s apart, all within `budget`; the
    /// data must parse and pass `MeshTLSData`'s checks (key matches, certificate valid now).
    func load(attempts: Int = 3, budget: Duration = .seconds(7)) async throws(LoadError) {
        let deadline = ContinuousClock.now + budget
        var lastError = ""
        for attempt in 1...attempts {
            do {
                let text = try await Self.within(deadline, fetch)
                let data = try MeshTLSData(json: text, now: Date())
                let tls = try TunnelTLS(data: data, version: 1)
                current = tls
                schedule = RefreshSchedule(frequency: frequency, loadedAt: Date(), notValidAfter: data.notValidAfter)
                apply(tls)
                return
            } catch {
                lastError = "\(error)"
                logger.warning("reading the mTLS data failed", metadata: ["attempt": "\(attempt)", "error": "\(lastError)"])
            }
            let pause = Duration.milliseconds(500 * attempt)
            guard attempt < attempts, ContinuousClock.now + pause < deadline else { break }
            try? await Task.sleep(for: pause)
        }
        throw LoadError(description: lastError)
    }

    struct OutOfTime: Error, CustomStringConvertible {
        var description: String { "no answer within the Init budget" }
    }

    /// `body`'s value, or `OutOfTime` at `deadline` (the call is cancelled).
    static func within(_ deadline: ContinuousClock.Instant, _ body: @escaping Fetch) async throws -> String {
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return nil
            }
            defer { group.cancelAll() }
            let first = try await group.next() ?? nil
            guard let text = first else { throw OutOfTime() }
            return text
        }
    }

    /// Reads again in the background on the schedule, until `stop`.
    func startTimer() {
        timer = Task { [weak self] in
            while !Task.isCancelled {
                guard let self, let next = await self.schedule?.nextAttempt else { return }
                let wait = max(Duration.seconds(next.timeIntervalSinceNow), .milliseconds(50))
                guard (try? await Task.sleep(for: wait)) != nil else { return }
                await self.refreshIfDue()
            }
        }
    }

    /// On `INVOKE` (docs/DECISIONS.md D70: the timer did not run while the environment was frozen): a read when one
    /// is due, in the background so that `event/next` is asked again at once.
    func invoked() {
        guard schedule?.isDue(at: Date()) == true, reading == nil else { return }
        reading = Task { await self.refresh() }
    }

    func refreshIfDue() async {
        guard schedule?.isDue(at: Date()) == true else { return }
        if let reading {
            await reading.value
            return
        }
        let task = Task { await self.refresh() }
        reading = task
        await task.value
    }

    /// One read; new data applies to new dials.
    private func refresh() async {
        defer { reading = nil }
        do {
            let data = try MeshTLSData(json: try await fetch(), now: Date())
            if data != current?.data {
                let tls = try TunnelTLS(data: data, version: (current?.version ?? 0) + 1)
                current = tls
                apply(tls)
                logger.info("new mTLS data; new connections use it", metadata: ["version": "\(tls.version)", "notValidAfter": "\(data.notValidAfter)"])
            }
            schedule?.succeeded(at: Date(), notValidAfter: data.notValidAfter)
        } catch {
            schedule?.failed(at: Date())
            let expired = current?.isExpired(at: Date()) ?? true
            logger.log(
                level: expired ? .error : .warning,
                expired ? "reading the mTLS data failed and the cached certificate has expired: new connections are refused" : "reading the mTLS data failed; keeping the cached data",
                metadata: ["error": "\(error)", "failures": "\(schedule?.consecutiveFailures ?? 0)", "retryAt": "\(schedule?.nextAttempt ?? Date())"]
            )
        }
    }

    func stop() {
        timer?.cancel()
        timer = nil
        reading?.cancel()
    }
}

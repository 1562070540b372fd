/// When the watch coordinator builds and publishes a snapshot. Pure: the coordinator feeds it events
/// and clock readings, and does what `next(now:)` says.
///
/// - A change after a quiet spell is built after `settle` (leading edge): the answers that come
///   with one change in Consul (the linked list, the catalog, the config entries) arrive a few
///   milliseconds apart and make one build, and one more link waits for no longer timer.
/// - Builds are at least `coalescing` apart: a burst of answers (10,000 leaves arriving) makes one
///   build per interval, not one per answer.
/// - A change during a build is built after it, on the same rules.
struct PublishSchedule {
    enum Action: Equatable {
        /// Nothing to build: wait for a change.
        case waitForChange
        /// A change waits for its time; ask again then (or after another change).
        case sleep(until: ContinuousClock.Instant)
        /// Build and publish now, then report `built(now:)`.
        case build
    }

    private enum State {
        case clean
        /// Changed since the last build, first at `since`.
        case changed(since: ContinuousClock.Instant)
        /// A build runs; `changedSince` is set when a change came meanwhile.
        case building(changedSince: ContinuousClock.Instant?)
    }

    let coalescing: Duration
    let settle: Duration
    private var state = State.clean
    private var lastBuildEnded: ContinuousClock.Instant?

    init(coalescing: Duration, settle: Duration) {
        self.coalescing = coalescing
        self.settle = settle
    }

    /// An answer changed what the next snapshot is built from.
    mutating func changed(at now: ContinuousClock.Instant) {
        switch state {
        case .clean: state = .changed(since: now)
        case .changed: break
        case .building(changedSince: nil): state = .building(changedSince: now)
        case .building: break
        }
    }

    /// What to do now.
    mutating func next(now: ContinuousClock.Instant) -> Action {
        switch state {
        case .clean, .building:
            return .waitForChange
        case .changed(let since):
            let due = dueTime(changedAt: since)
            guard now >= due else { return .sleep(until: due) }
            state = .building(changedSince: nil)
            return .build
        }
    }

    /// The build that `next` asked for has ended (published or not).
    mutating func built(now: ContinuousClock.Instant) {
        guard case .building(let changedSince) = state else { return }
        lastBuildEnded = now
        state = changedSince.map { .changed(since: $0) } ?? .clean
    }

    /// The end of the quiet interval after the last build, when the change came within it; else
    /// the change's own settle time.
    private func dueTime(changedAt since: ContinuousClock.Instant) -> ContinuousClock.Instant {
        if let lastBuildEnded, case let quietUntil = lastBuildEnded + coalescing, quietUntil > since {
            return quietUntil
        }
        return since + settle
    }
}

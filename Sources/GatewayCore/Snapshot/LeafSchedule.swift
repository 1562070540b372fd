import DequeModule
import HeapModule

/// Which linked service's leaf certificate to read next, and when (docs/DECISIONS.md D36).
///
/// A blocking leaf watch per linked service holds one agent connection each, and the agent refuses
/// a client past 200 (`limits.http_max_conns_per_client`): the gateway broke at ~190 services.
/// Instead leaves are read **without blocking** — the agent keeps every leaf in its cache and renews
/// it itself, and a read without `index` makes it revalidate that leaf — a few at a time, by
/// two rules:
///
/// - **The ring.** Every linked service has a place in a ring that is walked at an even pace, once
///   per `refreshInterval` (4 min): each leaf is read every 4 minutes, so a leaf the agent renewed or
///   re-signed is served within 5 minutes of its issue, and the load is flat: 10,000 services make
///   10,000 / 240 s ≈ 42 reads/s (the goal is ≤ 50), never a burst. Reading a leaf near its
///   expiry again needs nothing more.
/// - **Urgent reads**, at up to `maximumRate` (200/s): a newly linked service at once (it is not
///   served before its leaf), every service after a roots change (docs/DECISIONS.md D36: 10,000 in 50 s,
///   inside the 2-minute goal), a failed read of a service without a leaf yet (retried with a
///   backoff of its own, so one refused service never holds up the others), and, after a new active
///   root, a read that still returned the leaf held before the change (the agent has not re-signed
///   it yet) again every `resignRetry`, for up to `resignPatience`.
///
/// At most `concurrency` reads are in flight. Failures in a row pause every read (0.1 s, doubling
/// to 10 s), so an agent that is down or refusing sees a trickle, not 200 reads a second. A failed
/// refresh of a service that has a leaf is not retried early: it keeps its leaf (errors never remove
/// data) and the ring comes back to it.
///
/// Pure: every event takes `now`, an instant of the caller's `ContinuousClock` (the clock the
/// reader sleeps on, so a `.wait(until:)` is slept on as it is); spans are `Duration`s. Tests
/// build instants from any origin and never wait.
struct LeafSchedule {
    typealias Instant = ContinuousClock.Instant
    typealias Policy = LeafReadPolicy

    enum Next: Equatable {
        /// Read this service's leaf now (it counts as in flight until `answered` or `failed`).
        case read(LinkedService)
        /// Nothing may start before this time.
        case wait(until: Instant)
        /// Nothing can start before an event: a read ends, a service is linked, the roots change.
        case idle
    }

    private struct Entry {
        var service: LinkedService
        /// Tells this entry's current urgent item from older ones still in the heap.
        var urgentGeneration: UInt64 = 0
        var hasUrgentItem = false
        var inFlight = false
        var hasLeaf = false
        /// The roots changed while a read was in flight: its answer may predate them.
        var readAgainOnReturn = false
        var failures = 0
        /// The serial held when the active root changed, until a different one arrives.
        var awaitingResign: (serial: String, until: Instant)?
    }

    private struct UrgentItem: Comparable {
        var due: Instant
        var sequence: UInt64
        var key: String
        var generation: UInt64

        static func < (lhs: UrgentItem, rhs: UrgentItem) -> Bool { (lhs.due, lhs.sequence) < (rhs.due, rhs.sequence) }
        static func == (lhs: UrgentItem, rhs: UrgentItem) -> Bool { lhs.sequence == rhs.sequence }
    }

    let policy: Policy
    private var entries: [String: Entry] = [:]
    private var ring = Deque<String>()
    /// `nil` while nothing is linked.
    private var nextRingRead: Instant?
    private var urgent = Heap<UrgentItem>()
    private var sequence: UInt64 = 0
    /// `nil` before the first urgent read: no pace to keep yet.
    private var nextUrgentStart: Instant?
    /// `nil` when no failure paused the reads.
    private var pausedUntil: Instant?
    private var failuresInARow = 0
    private(set) var inFlight = 0

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    var count: Int { entries.count }
    var keys: [String] { Array(entries.keys) }
    func isScheduled(_ key: String) -> Bool { entries[key] != nil }

    /// The ring's pace: every service once per interval.
    private var ringSpacing: Duration { policy.refreshInterval / max(entries.count, 1) }

    /// The pace of urgent reads: one per this.
    private var urgentSpacing: Duration { .seconds(1) / policy.maximumRate }

    // MARK: Events

    /// A newly linked service: read at once, then on the ring.
    mutating func link(_ service: LinkedService, now: Instant) {
        guard entries[service.key] == nil else { return }
        entries[service.key] = Entry(service: service)
        ring.append(service.key)
        // One step of the new pace from now at the latest: 10,000 services linked at once are on a
        // ring walked every 24 ms from the start, not after a first 4-minute step.
        nextRingRead = min(nextRingRead ?? now + ringSpacing, now + ringSpacing)
        scheduleUrgent(service.key, at: now)
    }

    /// An unlinked service: never read again; a read in flight is ignored when it ends.
    mutating func unlink(_ key: String) {
        guard let entry = entries.removeValue(forKey: key) else { return }
        if entry.inFlight { inFlight -= 1 }
        // Its ring place and heap item are dropped when they come up.
    }

    /// New roots: every leaf is read at once. `heldSerials`, given when the active root changed, are
    /// the leaves served at the change: a read that returns one of them is repeated.
    mutating func rootsChanged(now: Instant, heldSerials: [String: String]?) {
        let patience = now + policy.resignPatience
        for key in entries.keys.sorted() {
            if let serial = heldSerials?[key] {
                entries[key]?.awaitingResign = (serial, patience)
            }
            if entries[key]?.inFlight == true {
                entries[key]?.readAgainOnReturn = true
            } else {
                scheduleUrgent(key, at: now)
            }
        }
    }

    /// A leaf arrived for `key`.
    mutating func answered(_ key: String, serial: String, now: Instant) {
        guard var entry = entries[key], entry.inFlight else { return }
        entry.inFlight = false
        inFlight -= 1
        failuresInARow = 0
        entry.failures = 0
        entry.hasLeaf = true
        var retryAt: Instant?
        if let awaiting = entry.awaitingResign {
            if awaiting.serial != serial || now >= awaiting.until {
                entry.awaitingResign = nil
            } else {
                retryAt = now + policy.resignRetry
            }
        }
        if entry.readAgainOnReturn {
            entry.readAgainOnReturn = false
            retryAt = now
        }
        entries[key] = entry
        if let retryAt { scheduleUrgent(key, at: retryAt) }
    }

    /// The read for `key` failed (transport, status, or a leaf that is not the service's).
    mutating func failed(_ key: String, now: Instant, retryAfter: Duration? = nil) {
        failuresInARow += 1
        let pause = min(policy.firstPause * (1 << min(failuresInARow - 1, 16)), policy.maximumPause)
        let until = now + max(pause, retryAfter ?? .zero)
        pausedUntil = max(pausedUntil ?? until, until)
        guard var entry = entries[key], entry.inFlight else { return }
        entry.inFlight = false
        inFlight -= 1
        entry.failures += 1
        let needsLeaf = !entry.hasLeaf || entry.awaitingResign != nil || entry.readAgainOnReturn
        entry.readAgainOnReturn = false
        entries[key] = entry
        guard needsLeaf else { return }
        let backoff = min(policy.baseBackoff * (1 << min(entry.failures - 1, 16)), policy.maximumBackoff)
        scheduleUrgent(key, at: now + max(backoff, retryAfter ?? .zero))
    }

    /// What to do now. Call again after each `.read` until it answers `.wait` or `.idle`.
    mutating func next(now: Instant) -> Next {
        guard inFlight < policy.concurrency else { return .idle }
        if let pausedUntil, pausedUntil > now { return .wait(until: pausedUntil) }
        // Urgent reads first, paced at `maximumRate`.
        var urgentStart: Instant?
        while let top = urgent.min {
            guard let entry = entries[top.key], entry.hasUrgentItem, entry.urgentGeneration == top.generation else {
                _ = urgent.popMin()
                continue
            }
            if entry.inFlight {
                // Read again when that read ends, not now and not never.
                _ = urgent.popMin()
                entries[top.key]?.hasUrgentItem = false
                entries[top.key]?.readAgainOnReturn = true
                continue
            }
            let due = max(top.due, nextUrgentStart ?? top.due)
            if due <= now {
                _ = urgent.popMin()
                entries[top.key]?.hasUrgentItem = false
                nextUrgentStart = max(nextUrgentStart ?? now, now) + urgentSpacing
                return start(top.key)
            }
            urgentStart = due
            break
        }
        // The ring, at its even pace; a burst of at most one second when it fell behind.
        while !ring.isEmpty, let due = nextRingRead, due <= now {
            let key = ring.removeFirst()
            guard let entry = entries[key] else { continue }
            ring.append(key)
            nextRingRead = max(due, now - .seconds(1)) + ringSpacing
            if !entry.inFlight { return start(key) }
        }
        let ringWake = ring.isEmpty ? nil : nextRingRead
        guard let wake = [urgentStart, ringWake].compactMap({ $0 }).min() else { return .idle }
        return .wait(until: wake)
    }

    private mutating func start(_ key: String) -> Next {
        entries[key]!.inFlight = true
        inFlight += 1
        return .read(entries[key]!.service)
    }

    private mutating func scheduleUrgent(_ key: String, at due: Instant) {
        guard var entry = entries[key] else { return }
        entry.urgentGeneration &+= 1
        entry.hasUrgentItem = true
        sequence &+= 1
        entries[key] = entry
        urgent.insert(UrgentItem(due: due, sequence: sequence, key: key, generation: entry.urgentGeneration))
    }
}

/// The numbers of `LeafSchedule`.
public struct LeafReadPolicy: Sendable {
    /// Every leaf is read once per interval: a renewed leaf is served within it.
    public var refreshInterval: Duration = .seconds(240)
    /// Urgent reads (new services, roots changes, retries) per second at most.
    public var maximumRate: Double = 200
    /// Reads in flight at most: connections of the agent budget they may hold.
    public var concurrency = 4
    /// A failed read of a service without a leaf is retried after this, doubling to the maximum.
    public var baseBackoff: Duration = .seconds(1)
    public var maximumBackoff: Duration = .seconds(60)
    /// Failures in a row pause every read: this long, doubling to the maximum.
    public var firstPause: Duration = .milliseconds(100)
    public var maximumPause: Duration = .seconds(10)
    public var resignRetry: Duration = .seconds(5)
    public var resignPatience: Duration = .seconds(120)

    public init() {}
}

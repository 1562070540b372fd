import Testing

@testable import GatewayCore

/// The origin of the simulated clock: every time in these tests is an offset from it, never a wait.
private let origin = ContinuousClock.now

/// The instant `seconds` after the origin, to the microsecond (so that `at(0.1)` is exactly
/// `at(0) + .milliseconds(100)`).
private func at(_ seconds: Double) -> ContinuousClock.Instant {
    origin + .microseconds(Int((seconds * 1_000_000).rounded()))
}

/// Seconds from the origin, for the statistics of a simulation.
private func seconds(_ instant: ContinuousClock.Instant) -> Double {
    (instant - origin) / .seconds(1)
}

/// The leaf read schedule on a simulated clock: what it starts, when, and how fast.
@Suite("Leaf read schedule")
struct LeafScheduleTests {
    static func service(_ number: Int) -> LinkedService { LinkedService(name: "fn-\(number)") }

    /// One linked service whose first read answered `serial` at time 0.
    static func holdingOneLeaf(serial: String) -> LeafSchedule {
        var schedule = LeafSchedule()
        schedule.link(service(1), now: at(0))
        _ = schedule.next(now: at(0))
        schedule.answered("fn-1", serial: serial, now: at(0))
        return schedule
    }

    /// Runs the schedule from `start` to `end` (seconds from the origin): every read it starts is
    /// answered `latency` later with the serial `serial(key, time)`. Returns the start time of
    /// every read, by key, in seconds from the origin.
    static func simulate(
        _ schedule: inout LeafSchedule,
        from start: Double,
        to end: Double,
        latency: Duration = .milliseconds(2),
        serial: (String, Double) -> String = { key, _ in key }
    ) -> [String: [Double]] {
        var reads: [String: [Double]] = [:]
        var pending: [(end: ContinuousClock.Instant, key: String)] = []
        var now = at(start)
        let end = at(end)
        while now < end {
            // Answer what has finished by now, earliest first.
            pending.sort { $0.end < $1.end }
            while let first = pending.first, first.end <= now {
                pending.removeFirst()
                schedule.answered(first.key, serial: serial(first.key, seconds(first.end)), now: first.end)
            }
            var nextEvent = pending.first?.end ?? end
            loop: while true {
                switch schedule.next(now: now) {
                case .read(let service):
                    reads[service.key, default: []].append(seconds(now))
                    pending.append((now + latency, service.key))
                    nextEvent = min(nextEvent, now + latency)
                case .wait(let until):
                    nextEvent = min(nextEvent, until)
                    break loop
                case .idle:
                    break loop
                }
            }
            now = max(nextEvent, now + .microseconds(1))
        }
        return reads
    }

    @Test func aLinkedServiceIsReadAtOnceAndThenEveryInterval() {
        var schedule = LeafSchedule()
        schedule.link(Self.service(1), now: at(0))
        #expect(schedule.next(now: at(0)) == .read(Self.service(1)))
        // In flight: nothing more to start before the ring comes round.
        #expect(schedule.next(now: at(0)) == .wait(until: at(240)))
        schedule.answered("fn-1", serial: "A", now: at(0.01))
        #expect(schedule.next(now: at(0.02)) == .wait(until: at(240)))
        #expect(schedule.next(now: at(240)) == .read(Self.service(1)))
        schedule.answered("fn-1", serial: "A", now: at(240.01))
        #expect(schedule.next(now: at(240.01)) == .wait(until: at(480)))
    }

    @Test func tenThousandServicesStayUnderFiftyReadsASecondAndEachIsReadWithinFiveMinutes() {
        var schedule = LeafSchedule()
        for number in 0..<10_000 { schedule.link(Self.service(number), now: at(0)) }
        let reads = Self.simulate(&schedule, from: 0, to: 1_800)
        #expect(reads.count == 10_000)
        // The first read of every service: at most 200 a second, all inside a minute.
        let firsts = reads.values.map { $0[0] }
        #expect(firsts.max()! < 60)
        // Steady state (after the first 5 minutes): reads per second in every 10 s window.
        let steady = reads.values.flatMap { $0 }.filter { $0 >= 300 }
        var perWindow: [Int: Int] = [:]
        for time in steady { perWindow[Int(time / 10), default: 0] += 1 }
        let busiest = Double(perWindow.values.max()!) / 10
        #expect(busiest <= 50, "\(busiest) reads/s")
        // A leaf the agent renews is served within 5 minutes: no gap between reads reaches 300 s.
        let widestGap = reads.values.map { times in zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? 0 }.max()!
        #expect(widestGap < 300, "\(widestGap) s between two reads of one leaf")
    }

    @Test func aRootsChangeReachesTenThousandLeavesWithinTwoMinutes() {
        var schedule = LeafSchedule()
        for number in 0..<10_000 { schedule.link(Self.service(number), now: at(0)) }
        _ = Self.simulate(&schedule, from: 0, to: 100)
        // The active root changes at 100 s; the agent has re-signed every leaf by then.
        let held = Dictionary(uniqueKeysWithValues: (0..<10_000).map { ("fn-\($0)", "fn-\($0)") })
        schedule.rootsChanged(now: at(100), heldSerials: held)
        let reads = Self.simulate(&schedule, from: 100, to: 300) { key, _ in key + "-new" }
        #expect(reads.count == 10_000)
        let reached = reads.values.map { $0[0] }.max()!
        #expect(reached - 100 < 120, "the last leaf was read \(reached - 100) s after the change")
    }

    @Test func anOldLeafAfterANewActiveRootIsReadAgainUntilTheAgentReSignsIt() {
        var schedule = Self.holdingOneLeaf(serial: "OLD")
        schedule.rootsChanged(now: at(10), heldSerials: ["fn-1": "OLD"])
        #expect(schedule.next(now: at(10)) == .read(Self.service(1)))
        // Still the old leaf: again after 5 s, not after 4 minutes.
        schedule.answered("fn-1", serial: "OLD", now: at(10))
        #expect(schedule.next(now: at(10)) == .wait(until: at(15)))
        #expect(schedule.next(now: at(15)) == .read(Self.service(1)))
        schedule.answered("fn-1", serial: "NEW", now: at(15))
        // Re-signed: back on the ring.
        #expect(schedule.next(now: at(15)) == .wait(until: at(240)))
    }

    @Test func anAgentThatNeverReSignsIsGivenUpOnAfterThePatience() {
        var schedule = Self.holdingOneLeaf(serial: "OLD")
        schedule.rootsChanged(now: at(10), heldSerials: ["fn-1": "OLD"])
        let reads = Self.simulate(&schedule, from: 10, to: 600) { _, _ in "OLD" }
        // Every 5 s for 2 minutes, then the normal interval.
        let retries = reads["fn-1"]!.filter { $0 < 131 }
        #expect((24...26).contains(retries.count), "\(retries.count)")
        #expect(reads["fn-1"]!.count < retries.count + 4)
    }

    @Test func aRootsChangeDuringAReadReadsAgainWhenItEnds() {
        var schedule = LeafSchedule()
        schedule.link(Self.service(1), now: at(0))
        _ = schedule.next(now: at(0))
        schedule.rootsChanged(now: at(1), heldSerials: nil)
        // The answer may predate the new roots.
        schedule.answered("fn-1", serial: "A", now: at(2))
        #expect(schedule.next(now: at(2)) == .read(Self.service(1)))
    }

    @Test func failuresBackOffPerServiceWithoutHoldingUpTheOthers() {
        var schedule = LeafSchedule()
        schedule.link(Self.service(1), now: at(0))
        schedule.link(Self.service(2), now: at(0))
        #expect(schedule.next(now: at(0)) == .read(Self.service(1)))
        schedule.failed("fn-1", now: at(0))
        // A failure pauses every read briefly (0.1 s, doubling while failures follow each other)...
        #expect(schedule.next(now: at(0.01)) == .wait(until: at(0.1)))
        // ...but the failed service does not hold up the next one.
        #expect(schedule.next(now: at(0.1)) == .read(Self.service(2)))
        schedule.answered("fn-2", serial: "B", now: at(0.11))
        // Its own retries: 1 s, then 2 s, then 4 s ... up to 60 s; Retry-After wins when longer.
        #expect(schedule.next(now: at(0.11)) == .wait(until: at(1)))
        #expect(schedule.next(now: at(1)) == .read(Self.service(1)))
        schedule.failed("fn-1", now: at(1))
        #expect(schedule.next(now: at(1.2)) == .wait(until: at(3)))
        #expect(schedule.next(now: at(3)) == .read(Self.service(1)))
        schedule.failed("fn-1", now: at(3), retryAfter: .seconds(30))
        #expect(schedule.next(now: at(3.5)) == .wait(until: at(33)))
    }

    @Test func anAgentThatRefusesEverythingSeesATrickle() {
        var schedule = LeafSchedule()
        for number in 0..<10_000 { schedule.link(Self.service(number), now: at(0)) }
        var reads = 0
        var now = at(0)
        var inFlight: [String] = []
        while now < at(600) {
            for key in inFlight { schedule.failed(key, now: now) }
            inFlight = []
            while case .read(let service) = schedule.next(now: now) {
                inFlight.append(service.key)
                reads += 1
            }
            now += .milliseconds(10)
        }
        // 10 minutes against a refusing agent: a pause of up to 10 s after each failed batch.
        #expect(reads < 400, "\(reads) reads")
    }

    @Test func aFailedRefreshKeepsItsLeafAndWaitsForTheRing() {
        var schedule = Self.holdingOneLeaf(serial: "A")
        #expect(schedule.next(now: at(240)) == .read(Self.service(1)))
        schedule.failed("fn-1", now: at(240))
        #expect(schedule.next(now: at(241)) == .wait(until: at(480)))
    }

    @Test func atMostFourReadsAreInFlightAndStartsAreSpaced() {
        var schedule = LeafSchedule()
        for number in 0..<10 { schedule.link(Self.service(number), now: at(0)) }
        var started = 0
        var now = at(0)
        while case let next = schedule.next(now: now), next != .idle {
            if case .wait(let until) = next {
                #expect(until - now <= .milliseconds(5))
                now = until
            } else {
                started += 1
            }
        }
        #expect(started == 4)
        #expect(schedule.inFlight == 4)
    }

    @Test func anUnlinkedServiceIsNeverReadAgainAndItsLateAnswerIsIgnored() {
        var schedule = LeafSchedule()
        schedule.link(Self.service(1), now: at(0))
        schedule.link(Self.service(2), now: at(0))
        #expect(schedule.next(now: at(0)) == .read(Self.service(1)))
        schedule.unlink("fn-1")
        schedule.unlink("fn-2")
        #expect(schedule.inFlight == 0)
        schedule.answered("fn-1", serial: "A", now: at(1))
        #expect(schedule.next(now: at(1000)) == .idle)
        #expect(schedule.count == 0)
    }
}

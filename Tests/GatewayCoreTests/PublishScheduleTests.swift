import Testing

@testable import GatewayCore

/// When the watch coordinator builds: the schedule's transitions on an injected clock.
@Suite struct PublishScheduleTests {
    let start = ContinuousClock.now
    let coalescing = Duration.milliseconds(100)
    let settle = Duration.milliseconds(5)

    func schedule() -> PublishSchedule { PublishSchedule(coalescing: coalescing, settle: settle) }
    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    @Test func nothingChangedWaitsForAChange() {
        var schedule = schedule()
        #expect(schedule.next(now: at(0)) == .waitForChange)
        schedule.built(now: at(1))  // a build nobody asked for changes nothing
        #expect(schedule.next(now: at(1_000)) == .waitForChange)
    }

    @Test func aChangeAfterAQuietSpellIsBuiltAfterTheSettleTime() {
        var schedule = schedule()
        schedule.changed(at: at(0))
        #expect(schedule.next(now: at(0)) == .sleep(until: at(5)))
        // More answers of the same change: still due at the first one's settle time.
        schedule.changed(at: at(3))
        #expect(schedule.next(now: at(3)) == .sleep(until: at(5)))
        #expect(schedule.next(now: at(5)) == .build)
        // Building: nothing more to do until it ends.
        #expect(schedule.next(now: at(6)) == .waitForChange)
        schedule.built(now: at(20))
        #expect(schedule.next(now: at(20)) == .waitForChange)
    }

    @Test func buildsAreAtLeastTheCoalescingTimeApart() {
        var schedule = schedule()
        schedule.changed(at: at(0))
        #expect(schedule.next(now: at(5)) == .build)
        schedule.built(now: at(10))
        // A change 1 ms after the build waits for the quiet interval to end, not for its settle.
        schedule.changed(at: at(11))
        #expect(schedule.next(now: at(11)) == .sleep(until: at(110)))
        #expect(schedule.next(now: at(109)) == .sleep(until: at(110)))
        #expect(schedule.next(now: at(110)) == .build)
        schedule.built(now: at(112))
        // A change after the quiet interval settles only.
        schedule.changed(at: at(500))
        #expect(schedule.next(now: at(500)) == .sleep(until: at(505)))
    }

    @Test func aChangeDuringABuildIsBuiltAfterIt() {
        var schedule = schedule()
        schedule.changed(at: at(0))
        #expect(schedule.next(now: at(5)) == .build)
        schedule.changed(at: at(7))
        schedule.changed(at: at(8))
        schedule.built(now: at(30))
        // Due at the end of the quiet interval after the build it came during.
        #expect(schedule.next(now: at(30)) == .sleep(until: at(130)))
        #expect(schedule.next(now: at(130)) == .build)
        schedule.built(now: at(131))
        #expect(schedule.next(now: at(131)) == .waitForChange)
    }

    @Test func aLateReadOfTheClockBuildsAtOnce() {
        var schedule = schedule()
        schedule.changed(at: at(0))
        // The loop ran late (a busy machine): the change is overdue and built now.
        #expect(schedule.next(now: at(50)) == .build)
    }
}

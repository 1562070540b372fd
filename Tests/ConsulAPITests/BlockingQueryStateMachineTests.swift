import ConsulAPI
import Testing

@Suite("Blocking query rules")
struct BlockingQueryStateMachineTests {
    let maximum: () -> Double = { 1 }
    let minimum: () -> Double = { 0 }
    /// The clock's origin for these tests: every time is an offset from it, never a real wait.
    let origin = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant { origin + .seconds(seconds) }

    @Test func firstRequestIsImmediateThenBlocksOnTheIndex() throws {
        var machine = BlockingQueryStateMachine()
        #expect(machine.nextRequest(now: at(0)) == .init(index: nil, wait: nil, delay: .zero))
        try machine.answered(newIndex: 42)
        #expect(machine.nextRequest(now: at(0.1)) == .init(index: 42, wait: .seconds(300), delay: .zero))
    }

    @Test func indexGoingBackwardsRestartsAndZeroBecomesOne() throws {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: at(0))
        try machine.answered(newIndex: 100)
        _ = machine.nextRequest(now: at(10))
        try machine.answered(newIndex: 7)  // snapshot restore
        #expect(machine.index == 0)
        #expect(machine.nextRequest(now: at(20)).index == nil)
        try machine.answered(newIndex: 0)
        #expect(machine.index == 1)
        #expect(machine.nextRequest(now: at(30)).index == 1)
    }

    @Test func missingIndexIsAnError() {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: at(0))
        #expect(throws: BlockingQueryStateMachine.AnswerError.missingIndex) { try machine.answered(newIndex: nil) }
        #expect(machine.consecutiveFailures == 1)
    }

    @Test func tokenBucketAllowsABurstOfTwoThenOnePerFiveSeconds() throws {
        var machine = BlockingQueryStateMachine()
        var now = at(0)
        var delays: [Duration] = []
        for number in 0..<6 {
            let request = machine.nextRequest(now: now)
            delays.append(request.delay)
            now += request.delay
            try machine.answered(newIndex: UInt64(number) + 1)  // a hot object answers at once
        }
        #expect(delays == [.zero, .zero, .zero, .seconds(5), .seconds(5), .seconds(5)])
    }

    @Test func tokensRefillWhileLongPollsWait() throws {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: at(0))
        try machine.answered(newIndex: 1)
        #expect(machine.nextRequest(now: at(0)).delay == .zero)
        try machine.answered(newIndex: 2)
        #expect(machine.nextRequest(now: at(0)).delay == .zero)
        try machine.answered(newIndex: 3)
        // A long poll of 300 s refilled the bucket: no wait.
        #expect(machine.nextRequest(now: at(300)).delay == .zero)
    }

    @Test func backoffDoublesUpTo30SecondsWithJitterAndResets() throws {
        var machine = BlockingQueryStateMachine()
        var ceilings: [Duration] = []
        var floors: [Duration] = []
        var now = at(0)
        _ = machine.nextRequest(now: now)
        for _ in 0..<7 {
            machine.failed(retryAfter: nil)
            var copy = machine
            floors.append(copy.nextRequest(now: now + .seconds(1000), random: minimum).delay)
            let request = machine.nextRequest(now: now + .seconds(1000), random: maximum)
            ceilings.append(request.delay)
            now += .seconds(1000) + request.delay
        }
        #expect(ceilings == [1, 2, 4, 8, 16, 30, 30].map { .seconds($0) })
        #expect(floors == [.milliseconds(500)] + [1, 2, 4, 8, 15, 15].map { .seconds($0) })
        try machine.answered(newIndex: 9)
        #expect(machine.nextRequest(now: now + .seconds(1000), random: maximum).delay == .zero)
    }

    @Test func jitterIsAnywhereBetweenHalfAndTheWholeCeiling() {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: at(0))
        machine.failed(retryAfter: nil)
        machine.failed(retryAfter: nil)
        // The second failure in a row: d = 2 s, so a wait in [1 s, 2 s].
        var copy = machine
        #expect(copy.nextRequest(now: at(100), random: { 0.25 }).delay == .milliseconds(1250))
        // A random value outside [0, 1] is clamped, never a wait outside the range.
        copy = machine
        #expect(copy.nextRequest(now: at(100), random: { 7 }).delay == .seconds(2))
        #expect(machine.nextRequest(now: at(100), random: { -1 }).delay == .seconds(1))
    }

    @Test func retryAfterIsALowerBound() {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: at(0))
        machine.failed(retryAfter: .seconds(12))
        #expect(machine.nextRequest(now: at(100), random: maximum).delay == .seconds(12))
    }

    @Test func errorsKeepTheIndexAndResetRestarts() throws {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: at(0))
        try machine.answered(newIndex: 50)
        machine.failed(retryAfter: nil)
        #expect(machine.nextRequest(now: at(100)).index == 50)
        machine.reset()
        #expect(machine.nextRequest(now: at(200)).index == nil)
    }

    @Test func readTimeoutCoversWaitPlusJitter() {
        #expect(BlockingQueryStateMachine.Policy().readTimeout == .seconds(300) + .milliseconds(18_750) + .seconds(10))
        #expect(BlockingQueryStateMachine.Policy(wait: .seconds(3600)).wait == .seconds(600))
    }
}

import ConsulAPI
import Testing

@Suite("Blocking query rules")
struct BlockingQueryStateMachineTests {
    let maximum: (ClosedRange<Double>) -> Double = { $0.upperBound }
    let minimum: (ClosedRange<Double>) -> Double = { $0.lowerBound }

    @Test func firstRequestIsImmediateThenBlocksOnTheIndex() throws {
        var machine = BlockingQueryStateMachine()
        #expect(machine.nextRequest(now: 0) == .init(index: nil, wait: nil, delay: 0))
        try machine.answered(newIndex: 42)
        #expect(machine.nextRequest(now: 0.1) == .init(index: 42, wait: .seconds(300), delay: 0))
    }

    @Test func indexGoingBackwardsRestartsAndZeroBecomesOne() throws {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: 0)
        try machine.answered(newIndex: 100)
        _ = machine.nextRequest(now: 10)
        try machine.answered(newIndex: 7)  // snapshot restore
        #expect(machine.index == 0)
        #expect(machine.nextRequest(now: 20).index == nil)
        try machine.answered(newIndex: 0)
        #expect(machine.index == 1)
        #expect(machine.nextRequest(now: 30).index == 1)
    }

    @Test func missingIndexIsAnError() {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: 0)
        #expect(throws: BlockingQueryStateMachine.AnswerError.missingIndex) { try machine.answered(newIndex: nil) }
        #expect(machine.consecutiveFailures == 1)
    }

    @Test func tokenBucketAllowsABurstOfTwoThenOnePerFiveSeconds() throws {
        var machine = BlockingQueryStateMachine()
        var now = 0.0
        var delays: [Double] = []
        for _ in 0..<6 {
            let request = machine.nextRequest(now: now)
            delays.append(request.delay)
            now += request.delay
            try machine.answered(newIndex: UInt64(now * 10) + 1)  // a hot object answers at once
        }
        #expect(delays == [0, 0, 0, 5, 5, 5])
    }

    @Test func tokensRefillWhileLongPollsWait() throws {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: 0)
        try machine.answered(newIndex: 1)
        #expect(machine.nextRequest(now: 0).delay == 0)
        try machine.answered(newIndex: 2)
        #expect(machine.nextRequest(now: 0).delay == 0)
        try machine.answered(newIndex: 3)
        // A long poll of 300 s refilled the bucket: no wait.
        #expect(machine.nextRequest(now: 300).delay == 0)
    }

    @Test func backoffDoublesUpTo30SecondsWithJitterAndResets() throws {
        var machine = BlockingQueryStateMachine()
        var ceilings: [Double] = []
        var floors: [Double] = []
        var now = 0.0
        _ = machine.nextRequest(now: now)
        for _ in 0..<7 {
            machine.failed(retryAfter: nil)
            var copy = machine
            floors.append(copy.nextRequest(now: now + 1000, random: minimum).delay)
            let request = machine.nextRequest(now: now + 1000, random: maximum)
            ceilings.append(request.delay)
            now += 1000 + request.delay
        }
        #expect(ceilings == [1, 2, 4, 8, 16, 30, 30])
        #expect(floors == [0.5, 1, 2, 4, 8, 15, 15])
        try machine.answered(newIndex: 9)
        #expect(machine.nextRequest(now: now + 1000, random: maximum).delay == 0)
    }

    @Test func retryAfterIsALowerBound() {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: 0)
        machine.failed(retryAfter: 12)
        #expect(machine.nextRequest(now: 100, random: maximum).delay == 12)
    }

    @Test func errorsKeepTheIndexAndResetRestarts() throws {
        var machine = BlockingQueryStateMachine()
        _ = machine.nextRequest(now: 0)
        try machine.answered(newIndex: 50)
        machine.failed(retryAfter: nil)
        #expect(machine.nextRequest(now: 100).index == 50)
        machine.reset()
        #expect(machine.nextRequest(now: 200).index == nil)
    }

    @Test func readTimeoutCoversWaitPlusJitter() {
        #expect(BlockingQueryStateMachine.Policy().readTimeout == .seconds(300) + .milliseconds(18_750) + .seconds(10))
        #expect(BlockingQueryStateMachine.Policy(wait: .seconds(3600)).wait == .seconds(600))
    }
}

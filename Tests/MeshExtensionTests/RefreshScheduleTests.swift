import Foundation
import Testing

@testable import MeshExtension

/// When the mTLS data is read again (docs/DECISIONS.md D65, D70), on a clock the test sets.
@Suite struct RefreshScheduleTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func aReadIsDueEveryFrequencyAfterTheLastSuccess() {
        var schedule = RefreshSchedule(frequency: .seconds(300), loadedAt: start, notValidAfter: start.addingTimeInterval(72 * 3600))
        #expect(schedule.nextAttempt == start.addingTimeInterval(300))
        #expect(!schedule.isDue(at: start.addingTimeInterval(299)))
        // After a freeze of an hour, the first INVOKE finds it due.
        #expect(schedule.isDue(at: start.addingTimeInterval(3600)))
        schedule.succeeded(at: start.addingTimeInterval(3600), notValidAfter: start.addingTimeInterval(72 * 3600))
        #expect(schedule.nextAttempt == start.addingTimeInterval(3900))
    }

    @Test func failuresBackOffFromOneSecondDoublingToSixty() {
        var schedule = RefreshSchedule(frequency: .seconds(300), loadedAt: start, notValidAfter: start.addingTimeInterval(72 * 3600))
        var now = start.addingTimeInterval(300)
        var waits: [TimeInterval] = []
        for _ in 0..<9 {
            schedule.failed(at: now)
            waits.append(schedule.nextAttempt.timeIntervalSince(now))
            now = schedule.nextAttempt
        }
        #expect(waits == [1, 2, 4, 8, 16, 32, 60, 60, 60])
        schedule.succeeded(at: now, notValidAfter: start.addingTimeInterval(72 * 3600))
        #expect(schedule.nextAttempt == now.addingTimeInterval(300), "a success ends the backoff")
    }

    @Test func aCertificateNearItsEndIsReadAtOnceThenEveryThirtySeconds() {
        // Expires in 12 minutes: the 10-minute window opens in 2, before the 5-minute period.
        let end = start.addingTimeInterval(12 * 60)
        var schedule = RefreshSchedule(frequency: .seconds(300), loadedAt: start, notValidAfter: end)
        #expect(schedule.nextAttempt == start.addingTimeInterval(120))
        // The read brought the same certificate: again 30 s later, not in a loop.
        schedule.succeeded(at: start.addingTimeInterval(120), notValidAfter: end)
        #expect(schedule.nextAttempt == start.addingTimeInterval(150))
        // A newer certificate: back to the period.
        schedule.succeeded(at: start.addingTimeInterval(150), notValidAfter: start.addingTimeInterval(72 * 3600))
        #expect(schedule.nextAttempt == start.addingTimeInterval(450))
    }
}

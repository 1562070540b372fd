import Testing

@testable import AWSAPI

@Suite("Retry decisions of AWS calls")
struct AWSRetryPolicyTests {
    let policy = AWSRetryPolicy(maximumAttempts: 3, maximumBackoff: .seconds(3))

    @Test func backoffIsFullJitterOfADoublingCeilingCappedByTheMaximum() {
        #expect(policy.backoff(afterAttempt: 1, random: 0.5) == .milliseconds(500))
        #expect(policy.backoff(afterAttempt: 2, random: 0.5) == .seconds(1))
        #expect(policy.backoff(afterAttempt: 3, random: 0.999) < .seconds(3))
        #expect(policy.backoff(afterAttempt: 10, random: 0.5) == .milliseconds(1500))
        #expect(policy.backoff(afterAttempt: 2, random: 0) == .zero)
    }

    @Test func throttlingAndTransientFailuresAreRetriedUntilTheLastAttempt() {
        #expect(policy.decide(.throttling(retryAfter: nil), attempt: 1, remaining: .seconds(30), random: 0.5) == .retry(after: .milliseconds(500)))
        #expect(policy.decide(.transient(retryAfter: nil), attempt: 2, remaining: .seconds(30), random: 0.5) == .retry(after: .seconds(1)))
        #expect(policy.decide(.throttling(retryAfter: nil), attempt: 3, remaining: .seconds(30), random: 0.5) == .giveUp)
    }

    @Test func permanentFailuresAreNeverRetried() {
        #expect(policy.decide(.permanent, attempt: 1, remaining: .seconds(30), random: 0.5) == .giveUp)
    }

    @Test func retryAfterWinsOverTheJitteredWait() {
        #expect(policy.decide(.throttling(retryAfter: .seconds(2)), attempt: 1, remaining: .seconds(30), random: 0.1) == .retry(after: .seconds(2)))
    }

    @Test func noRetryWhenTheWaitWouldOutlastTheCallDeadline() {
        #expect(policy.decide(.throttling(retryAfter: .seconds(5)), attempt: 1, remaining: .seconds(4), random: 0.5) == .giveUp)
        #expect(policy.decide(.transient(retryAfter: nil), attempt: 1, remaining: .milliseconds(100), random: 0.5) == .giveUp)
    }

    @Test func oneAttemptMeansNoRetry() {
        let single = AWSRetryPolicy(maximumAttempts: 1, maximumBackoff: .seconds(3))
        #expect(single.decide(.transient(retryAfter: nil), attempt: 1, remaining: .seconds(30), random: 0.5) == .giveUp)
    }
}

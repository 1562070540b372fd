import Atomics
import Foundation
import NIOCore
import NIOPosix
import TestSupport
import Testing

@testable import GatewayCore

/// Graceful shutdown waits for the last request and the last connection without polling: the
/// event that brings a count to zero wakes the waiter. Each wait below has a deadline a minute
/// away: a lost wake-up shows as a wait that lasted until it.
@Suite struct ZeroWaitersTests {
    static let farAway = Duration.seconds(60)

    /// A count kept the way `RequestProcessor` keeps requests in flight.
    final class Count: Sendable {
        let value = ManagedAtomic<Int>(0)
        let waiters = ZeroWaiters()

        func decrement() {
            if value.wrappingDecrementThenLoad(ordering: .sequentiallyConsistent) == 0 { waiters.reachedZero() }
        }

        func waitForZero(within timeout: Duration) async {
            await waiters.wait(until: .now + timeout) { self.value.load(ordering: .sequentiallyConsistent) == 0 }
        }
    }

    @Test func aWaiterWakesWhenTheCountReachesZeroNotAtItsDeadline() async throws {
        let count = Count()
        count.value.store(2, ordering: .sequentiallyConsistent)
        let started = ContinuousClock.now
        async let waited: Void = count.waitForZero(within: Self.farAway)
        // The waiter is registered once the flag says so; then the count goes to zero.
        try await waitUntil("the waiter registered") { count.waitersRegistered }
        count.decrement()
        count.decrement()
        await waited
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func aZeroCountReturnsAtOnceAndANonZeroOneAtTheDeadline() async {
        let count = Count()
        let started = ContinuousClock.now
        await count.waitForZero(within: Self.farAway)
        #expect(ContinuousClock.now - started < .seconds(30))

        count.value.store(1, ordering: .sequentiallyConsistent)
        let beforeDeadline = ContinuousClock.now
        await count.waitForZero(within: .milliseconds(200))
        #expect(ContinuousClock.now - beforeDeadline >= .milliseconds(200))
        #expect(count.value.load(ordering: .relaxed) == 1)
    }

    /// The decrement races the registration, a thousand times: no wake-up is ever lost.
    @Test func noWakeUpIsLostWhenTheLastDecrementRacesTheWaiter() async {
        let count = Count()
        let started = ContinuousClock.now
        for _ in 0..<1000 {
            count.value.store(1, ordering: .sequentiallyConsistent)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await count.waitForZero(within: Self.farAway) }
                group.addTask { count.decrement() }
            }
            #expect(count.value.load(ordering: .relaxed) == 0)
        }
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func severalWaitersWakeTogether() async throws {
        let count = Count()
        count.value.store(1, ordering: .sequentiallyConsistent)
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { await count.waitForZero(within: Self.farAway) } }
            let registered = (try? await waitUntil("eight waiters registered") { count.registeredWaiters == 8 }) != nil
            #expect(registered)
            count.decrement()
        }
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    /// `OpenConnections.waitUntilAllClosed` returns when the last connection closes, draining
    /// or not.
    @Test func openConnectionsWakeTheShutdownOnTheLastClose() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        let first = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        let second = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        let connections = OpenConnections()
        connections.add(first, service: "a")
        connections.add(second, service: "b")
        connections.drain(service: "a")
        #expect(connections.count == 2)
        let started = ContinuousClock.now
        async let waited: Void = connections.waitUntilAllClosed(timeout: Self.farAway)
        try await waitUntil("the shutdown waiting") { connections.closedAll.registeredCount == 1 }
        try await first.close()
        try await waitUntil("the first close counted") { connections.count == 1 }
        #expect(connections.closedAll.registeredCount == 1)
        try await second.close()
        await waited
        #expect(connections.count == 0)
        #expect(ContinuousClock.now - started < .seconds(30))
        try await server.close()
        try await group.shutdownGracefully()
    }
}

extension ZeroWaitersTests.Count {
    var waitersRegistered: Bool { registeredWaiters > 0 }
    var registeredWaiters: Int { waiters.registeredCount }
}

extension ZeroWaitersTests {
    /// A cancelled shutdown (another service of the group failed) stops waiting at once; it
    /// neither waits for its deadline nor goes round without waiting.
    @Test func aCancelledWaitReturnsAtOnce() async {
        let count = Count()
        count.value.store(1, ordering: .sequentiallyConsistent)
        let started = ContinuousClock.now
        let waiter = Task { await count.waitForZero(within: Self.farAway) }
        waiter.cancel()
        await waiter.value
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(count.registeredWaiters == 0)
    }
}

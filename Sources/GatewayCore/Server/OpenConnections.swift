import NIOCore
import Synchronization

/// The established client connections, by the linked service they are for, so that they can be
/// drained: when their service leaves the configuration, and at shutdown.
///
/// Draining sends a connection NIO's `ChannelShouldQuiesceEvent`, once. HTTP/1.1
/// (`HTTP1ConnectionHandler`) closes at once when idle, else answers the request in flight with
/// `connection: close` and closes after it. HTTP/2 (`HTTP2ConnectionHandler`, `HTTP2Drain`)
/// sends GOAWAY, lets the open streams finish and closes. A connection that has not said which
/// protocol it speaks is closed.
public final class OpenConnections: Sendable {
    private struct State {
        /// Connections not asked to drain yet.
        var byService: [String: [ObjectIdentifier: any Channel]] = [:]
        /// Connections asked to drain that have not closed yet.
        var draining: Set<ObjectIdentifier> = []
        /// Set at shutdown: connections established from now on are drained at once.
        var drainingAll = false

        var count: Int { byService.values.reduce(draining.count) { $0 + $1.count } }

        mutating func startDraining(_ channels: [ObjectIdentifier: any Channel]) {
            draining.formUnion(channels.keys)
        }
    }

    private let state = Mutex(State())
    /// Woken by the last close.
    let closedAll = ZeroWaiters()

    public init() {}

    /// The connections open now, draining or not.
    public var count: Int { state.withLock { $0.count } }

    /// Waits until every connection has closed, or `timeout` passes (graceful shutdown): woken by
    /// the last close.
    public func waitUntilAllClosed(timeout: Duration) async {
        await closedAll.wait(until: .now + timeout) { self.count == 0 }
    }

    /// Follows `channel` until it closes (or is drained).
    func add(_ channel: any Channel, service: String) {
        let id = ObjectIdentifier(channel)
        let drainNow = state.withLock { state in
            if state.drainingAll {
                state.draining.insert(id)
                return true
            }
            state.byService[service, default: [:]][id] = channel
            return false
        }
        if drainNow { Self.quiesce(channel) }
        channel.closeFuture.whenComplete { _ in
            let none = self.state.withLock { state in
                state.draining.remove(id)
                state.byService[service]?[id] = nil
                if state.byService[service]?.isEmpty == true { state.byService[service] = nil }
                return state.draining.isEmpty && state.byService.isEmpty
            }
            if none { self.closedAll.reachedZero(locked: true) }
        }
    }

    /// Drains every connection for `service`; returns how many.
    @discardableResult
    public func drain(service: String) -> Int {
        let channels = state.withLock { state in
            let channels = state.byService.removeValue(forKey: service) ?? [:]
            state.startDraining(channels)
            return channels
        }
        channels.values.forEach(Self.quiesce)
        return channels.count
    }

    /// Drains every connection, and every one established from now on (shutdown).
    @discardableResult
    public func drainAll() -> Int {
        let channels = state.withLock { state in
            state.drainingAll = true
            let channels = state.byService.values.reduce(into: [ObjectIdentifier: any Channel]()) { $0.merge($1) { first, _ in first } }
            state.byService = [:]
            state.startDraining(channels)
            return Array(channels.values)
        }
        channels.forEach(Self.quiesce)
        return channels.count
    }

    private static func quiesce(_ channel: any Channel) {
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }
}

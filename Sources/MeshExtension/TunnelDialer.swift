import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Opens verified TLS connections to the mesh gateway for the upstreams (docs/DECISIONS.md D62 to D64):
/// a warm spare when one younger than 30 s is at hand, else a dial (TCP and TLS within the dial
/// timeout), and after a spare is taken a new one is dialled in the background. New dials use the
/// TLS of the newest data; spares of older data are closed when new data arrives.
final class TunnelDialer: Sendable {
    let gatewayHost: String
    let gatewayPort: Int
    let dialTimeout: TimeAmount
    let warmConnections: Int
    /// Everything of the extension runs on this one loop: the relay joins two channels, which
    /// must share a loop, and a function's traffic does not need more.
    let eventLoop: any EventLoop
    let logger: Logger
    private let state = NIOLockedValueBox(State())

    /// A spare older than this is not taken (30 s: README.md, the `lambda-mesh-extension` lifecycle table).
    let spareLifetime: TimeAmount

    struct Spare {
        var channel: any Channel
        var version: Int
        var dialled: NIODeadline
    }

    /// A spare being dialled: a connection that asks meanwhile takes it (it is further along than
    /// a new dial would be).
    struct PendingSpare {
        var id: Int
        var dial: EventLoopFuture<any Channel>
    }

    struct State {
        var tls: TunnelTLS?
        /// By upstream (its local port).
        var spares: [Int: [Spare]] = [:]
        /// Spares being dialled, by upstream, for the current data only.
        var pending: [Int: [PendingSpare]] = [:]
        /// Spares being dialled that a connection took: theirs when the dial completes.
        var claimed: Set<Int> = []
        var nextID = 0
        var stopped = false
        var upstreams: [Upstream] = []
    }

    /// The clock spares age by (tests move it by hand).
    let clock: @Sendable () -> NIODeadline

    init(
        settings: ExtensionSettings, eventLoop: any EventLoop, logger: Logger,
        spareLifetime: TimeAmount = .seconds(30), clock: @escaping @Sendable () -> NIODeadline = { .now() }
    ) {
        self.spareLifetime = spareLifetime
        self.clock = clock
        gatewayHost = settings.gatewayHost
        gatewayPort = settings.gatewayPort
        dialTimeout = TimeAmount(settings.dialTimeout)
        warmConnections = settings.warmConnections
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// The TLS new dials use; `nil` before the first data.
    var tls: TunnelTLS? { state.withLockedValue { $0.tls } }

    /// New data: new dials use it; spares of the older data, ready or being dialled, are closed
    /// and dialled again. Open tunnels keep the TLS they were made with (README.md, the `lambda-mesh-extension` lifecycle table).
    func use(_ tls: TunnelTLS, upstreams: [Upstream]) {
        let old = state.withLockedValue { state -> [Spare] in
            state.tls = tls
            state.upstreams = upstreams
            // Spares being dialled with the old data find themselves gone when done, and close.
            defer {
                state.spares = [:]
                state.pending = [:]
            }
            return state.spares.values.flatMap { $0 }
        }
        for spare in old { spare.channel.close(promise: nil) }
        for upstream in upstreams { fillSpares(upstream) }
    }

    /// A verified connection for `upstream`: a ready spare, else one being dialled, else a new
    /// dial; and whether it was a spare.
    func connect(_ upstream: Upstream) -> EventLoopFuture<(channel: any Channel, spare: Bool)> {
        let now = clock()
        let (taken, claimed, stale, tls) = state.withLockedValue { state -> ((any Channel)?, EventLoopFuture<any Channel>?, [Spare], TunnelTLS?) in
            var spares = state.spares[upstream.localPort] ?? []
            var stale: [Spare] = []
            var taken: (any Channel)?
            while let spare = spares.first, taken == nil {
                spares.removeFirst()
                if spare.channel.isActive, spare.version == state.tls?.version, now - spare.dialled < self.spareLifetime {
                    taken = spare.channel
                } else {
                    stale.append(spare)
                }
            }
            state.spares[upstream.localPort] = spares
            var claimed: EventLoopFuture<any Channel>?
            if taken == nil, let pending = state.pending[upstream.localPort]?.first {
                state.pending[upstream.localPort]?.removeFirst()
                state.claimed.insert(pending.id)
                claimed = pending.dial
            }
            return (taken, claimed, stale, state.tls)
        }
        for spare in stale { spare.channel.close(promise: nil) }
        if let taken {
            fillSpares(upstream)
            return eventLoop.makeSucceededFuture((taken, true))
        }
        if let claimed {
            fillSpares(upstream)
            return claimed.map { ($0, true) }
        }
        guard let tls else { return eventLoop.makeFailedFuture(TunnelError("no mTLS data yet")) }
        let dial = dial(upstream, tls: tls)
        // A spare is dialled once the first connection is up (not beside it: two handshakes at
        // once would slow the one the function waits for).
        dial.whenSuccess { _ in self.fillSpares(upstream) }
        return dial.map { ($0, false) }
    }

    /// TCP to the mesh gateway and TLS with the upstream's SNI, within the dial timeout; succeeds
    /// once the peer is verified.
    func dial(_ upstream: Upstream, tls: TunnelTLS) -> EventLoopFuture<any Channel> {
        let verified = eventLoop.makePromise(of: Void.self)
        let sni = upstream.sni(trustDomain: tls.data.trustDomain)
        let expected = upstream.spiffeID(trustDomain: tls.data.trustDomain)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(dialTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(context: tls.context, serverHostname: sni)
                    try channel.pipeline.syncOperations.addHandlers(handler, TunnelStart(expected: expected, verified: verified))
                }
            }
        let timeout = eventLoop.scheduleTask(in: dialTimeout) {
            verified.fail(TunnelError("no verified TLS with the mesh gateway within \(self.dialTimeout.nanoseconds / 1_000_000) ms"))
        }
        let connected = bootstrap.connect(host: gatewayHost, port: gatewayPort)
        connected.whenFailure { error in verified.fail(TunnelError("cannot connect to the mesh gateway \(self.gatewayHost):\(self.gatewayPort): \(error)")) }
        verified.futureResult.whenComplete { _ in timeout.cancel() }
        return connected.and(verified.futureResult).map { channel, _ in channel }.flatMapErrorThrowing { error -> any Channel in
            connected.whenSuccess { $0.close(promise: nil) }
            throw error
        }
    }

    /// Dials spares until `warmConnections` are ready or being dialled for `upstream`.
    func fillSpares(_ upstream: Upstream) {
        let (dials, tls) = state.withLockedValue { state -> ([Int], TunnelTLS?) in
            guard !state.stopped, let tls = state.tls, !tls.isExpired(at: Date()) else { return ([], nil) }
            let have = (state.spares[upstream.localPort]?.count ?? 0) + (state.pending[upstream.localPort]?.count ?? 0)
            let ids = Array(state.nextID..<state.nextID + max(warmConnections - have, 0))
            state.nextID += ids.count
            return (ids, tls)
        }
        guard let tls else { return }
        for id in dials {
            let dial = dial(upstream, tls: tls)
            state.withLockedValue { state in
                guard !state.stopped, state.tls?.version == tls.version else { return }
                state.pending[upstream.localPort, default: []].append(PendingSpare(id: id, dial: dial))
            }
            dial.whenComplete { result in
                enum Fate { case claimed, spare, close }
                let fate = self.state.withLockedValue { state -> Fate in
                    if state.claimed.remove(id) != nil { return .claimed }
                    // Still listed: nobody took it, so it becomes a ready spare if its data is
                    // current. Not listed: new data or stop() dropped it.
                    guard let index = state.pending[upstream.localPort]?.firstIndex(where: { $0.id == id }) else { return .close }
                    state.pending[upstream.localPort]?.remove(at: index)
                    guard case .success(let channel) = result, !state.stopped, state.tls?.version == tls.version else { return .close }
                    state.spares[upstream.localPort, default: []].append(Spare(channel: channel, version: tls.version, dialled: self.clock()))
                    return .spare
                }
                switch (result, fate) {
                case (.success(let channel), .spare):
                    // A spare the peer closes leaves the list.
                    channel.closeFuture.whenComplete { _ in
                        self.state.withLockedValue { state in
                            state.spares[upstream.localPort]?.removeAll { $0.channel === channel }
                        }
                    }
                case (.success(let channel), .close):
                    channel.close(promise: nil)
                case (.failure(let error), _):
                    self.logger.debug("dialling a spare connection failed", metadata: ["upstream": "\(upstream)", "error": "\(error)"])
                case (.success, .claimed):
                    break
                }
            }
        }
    }

    /// The ready spares of `upstream`.
    func spareCount(_ upstream: Upstream) -> Int {
        state.withLockedValue { $0.spares[upstream.localPort]?.count ?? 0 }
    }

    /// Closes the spares too old to be taken and dials new ones: called on each INVOKE, since
    /// between invocations the environment is frozen and every spare ages past its use.
    func renewStaleSpares() {
        let now = clock()
        let (stale, upstreams) = state.withLockedValue { state -> ([Spare], [Upstream]) in
            var stale: [Spare] = []
            for (port, spares) in state.spares {
                stale += spares.filter { now - $0.dialled >= self.spareLifetime || !$0.channel.isActive }
                state.spares[port] = spares.filter { now - $0.dialled < self.spareLifetime && $0.channel.isActive }
            }
            return (stale, state.upstreams)
        }
        for spare in stale { spare.channel.close(promise: nil) }
        for upstream in upstreams { fillSpares(upstream) }
    }

    /// Stops dialling and closes the spares.
    func stop() {
        let spares = state.withLockedValue { state -> [Spare] in
            state.stopped = true
            defer {
                state.spares = [:]
                state.pending = [:]
            }
            return state.spares.values.flatMap { $0 }
        }
        for spare in spares { spare.channel.close(promise: nil) }
    }
}

extension TimeAmount {
    /// The same span as a NIO time amount (to the nanosecond).
    init(_ duration: Duration) {
        self = .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }
}

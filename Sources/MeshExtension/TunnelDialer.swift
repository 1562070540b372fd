import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Opens verified TLS connections to the mesh gateway for the upstreams (consul-lambda.md B.6):
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

    /// A spare older than this is not taken (B.6: 30 s).
    let spareLifetime: TimeAmount

    struct Spare {
        var channel: any Channel
        var version: Int
        var dialled: NIODeadline
    }

    struct State {
        var tls: TunnelTLS?
        /// By upstream (its local port).
        var spares: [Int: [Spare]] = [:]
        /// Spares being dialled, by upstream: counted so that a burst does not dial too many.
        var dialling: [Int: Int] = [:]
        var stopped = false
        var upstreams: [Upstream] = []
    }

    init(settings: ExtensionSettings, eventLoop: any EventLoop, logger: Logger, spareLifetime: TimeAmount = .seconds(30)) {
        self.spareLifetime = spareLifetime
        gatewayHost = settings.gatewayHost
        gatewayPort = settings.gatewayPort
        dialTimeout = .nanoseconds(Int64(settings.dialTimeout.components.seconds) * 1_000_000_000 + settings.dialTimeout.components.attoseconds / 1_000_000_000)
        warmConnections = settings.warmConnections
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// The TLS new dials use; `nil` before the first data.
    var tls: TunnelTLS? { state.withLockedValue { $0.tls } }

    /// New data: new dials use it, spares of the older data are closed and dialled again. Open
    /// tunnels keep the TLS they were made with (B.5).
    func use(_ tls: TunnelTLS, upstreams: [Upstream]) {
        let old = state.withLockedValue { state -> [Spare] in
            state.tls = tls
            state.upstreams = upstreams
            let old = state.spares.values.flatMap { $0 }
            state.spares = [:]
            return old
        }
        for spare in old { spare.channel.close(promise: nil) }
        for upstream in upstreams { fillSpares(upstream) }
    }

    /// A verified connection for `upstream`: a spare, else a new dial; and whether it was a spare.
    func connect(_ upstream: Upstream) -> EventLoopFuture<(channel: any Channel, spare: Bool)> {
        let now = NIODeadline.now()
        let (taken, stale, tls) = state.withLockedValue { state -> ((any Channel)?, [Spare], TunnelTLS?) in
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
            return (taken, stale, state.tls)
        }
        for spare in stale { spare.channel.close(promise: nil) }
        if let taken {
            fillSpares(upstream)
            return eventLoop.makeSucceededFuture((taken, true))
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
        let (missing, tls) = state.withLockedValue { state -> (Int, TunnelTLS?) in
            guard !state.stopped, let tls = state.tls, !tls.isExpired(at: Date()) else { return (0, nil) }
            let have = (state.spares[upstream.localPort]?.count ?? 0) + (state.dialling[upstream.localPort] ?? 0)
            let missing = max(warmConnections - have, 0)
            state.dialling[upstream.localPort, default: 0] += missing
            return (missing, tls)
        }
        guard let tls else { return }
        for _ in 0..<missing {
            dial(upstream, tls: tls).whenComplete { result in
                let keep = self.state.withLockedValue { state -> Bool in
                    state.dialling[upstream.localPort, default: 1] -= 1
                    guard case .success(let channel) = result, !state.stopped, state.tls?.version == tls.version else { return false }
                    state.spares[upstream.localPort, default: []].append(Spare(channel: channel, version: tls.version, dialled: .now()))
                    return true
                }
                switch result {
                case .success(let channel) where !keep:
                    channel.close(promise: nil)
                case .success(let channel):
                    // A spare the peer closes leaves the list.
                    channel.closeFuture.whenComplete { _ in
                        self.state.withLockedValue { state in
                            state.spares[upstream.localPort]?.removeAll { $0.channel === channel }
                        }
                    }
                case .failure(let error):
                    self.logger.debug("dialling a spare connection failed", metadata: ["upstream": "\(upstream)", "error": "\(error)"])
                }
            }
        }
    }

    /// Closes the spares too old to be taken and dials new ones: called on each INVOKE, since
    /// between invocations the environment is frozen and every spare ages past its use.
    func renewStaleSpares() {
        let now = NIODeadline.now()
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
            defer { state.spares = [:] }
            return state.spares.values.flatMap { $0 }
        }
        for spare in spares { spare.channel.close(promise: nil) }
    }
}

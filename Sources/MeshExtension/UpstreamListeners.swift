import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One listener per upstream on 127.0.0.1 (docs/DECISIONS.md D61; the reference listened on every
/// interface), each accepted connection tunnelled through the mesh gateway. Per-connection errors
/// are logged and never end the extension.
final class UpstreamListeners: Sendable {
    let dialer: TunnelDialer
    let logger: Logger
    /// TRACE_ENABLED: each tunnel's opening time at debug level.
    let traceEnabled: Bool
    private let listeners = NIOLockedValueBox<[any Channel]>([])
    /// The function's connections with a tunnel open or being opened, closed when time is up at shutdown.
    private let open = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    init(dialer: TunnelDialer, logger: Logger, traceEnabled: Bool = false) {
        self.dialer = dialer
        self.logger = logger
        self.traceEnabled = traceEnabled
    }

    struct BindError: Error, CustomStringConvertible {
        var description: String
    }

    /// Binds every upstream's listener; all must be bound within `timeout` (`CONSUL_EXTENSION_PROXY_TIMEOUT`), else none stays.
    func bind(_ upstreams: [Upstream], timeout: Duration) async throws(BindError) {
        let eventLoop = dialer.eventLoop
        let binds = upstreams.map { upstream in
            ServerBootstrap(group: eventLoop)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                // Nothing is read from the function until its tunnel is up: the bytes wait in the
                // socket (unless the function half-closes: NIO then reads to the end, and
                // `LocalConnection` holds that until the relay takes it).
                .childChannelOption(.autoRead, value: false)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(LocalConnection(upstream: upstream, listeners: self))
                    }
                }
                .bind(host: "127.0.0.1", port: upstream.localPort)
                .map { $0 as any Channel }
                .flatMapErrorThrowing { error -> any Channel in throw BindError(description: "cannot listen on 127.0.0.1:\(upstream.localPort) for \(upstream): \(error)") }
        }
        let all = EventLoopFuture.whenAllComplete(binds, on: eventLoop)
        let inTime = eventLoop.makePromise(of: [Result<any Channel, any Error>].self)
        all.cascade(to: inTime)
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            inTime.fail(BindError(description: "the listeners were not bound within \(timeout) (CONSUL_EXTENSION_PROXY_TIMEOUT)"))
        }
        let results: [Result<any Channel, any Error>]
        do {
            results = try await inTime.futureResult.get()
            timer.cancel()
        } catch {
            // Binds that finish after the timeout are closed as they come.
            all.whenSuccess { results in
                for case .success(let channel) in results { channel.close(promise: nil) }
            }
            throw error as? BindError ?? BindError(description: "\(error)")
        }
        let bound = results.compactMap { try? $0.get() }
        let failure = results.lazy.compactMap { result -> BindError? in
            if case .failure(let error) = result { return error as? BindError ?? BindError(description: "\(error)") }
            return nil
        }.first
        if let failure {
            for channel in bound { channel.close(promise: nil) }
            throw failure
        }
        listeners.withLockedValue { $0 = bound }
    }

    /// Stops accepting: the listeners close, open tunnels go on.
    func stopAccepting() async {
        let channels = listeners.withLockedValue { channels in
            defer { channels = [] }
            return channels
        }
        for channel in channels { try? await channel.close() }
    }

    /// How many of the function's connections are open.
    var openCount: Int { open.withLockedValue { $0.count } }

    /// Waits until every open connection has closed, or `deadline`: on the connections' close
    /// futures, again for any opened meanwhile.
    func waitUntilAllClosed(deadline: ContinuousClock.Instant) async {
        let eventLoop = dialer.eventLoop
        while case let closing = open.withLockedValue({ $0.values.map(\.closeFuture) }), !closing.isEmpty, ContinuousClock.now < deadline {
            let allClosed = EventLoopFuture.andAllComplete(closing, on: eventLoop)
            let promise = eventLoop.makePromise(of: Void.self)
            allClosed.cascade(to: promise)
            let timer = eventLoop.scheduleTask(deadline: NIODeadline.now() + TimeAmount(deadline - ContinuousClock.now)) { promise.succeed() }
            try? await promise.futureResult.get()
            timer.cancel()
        }
    }

    /// Closes every open tunnel.
    func closeAll() {
        for channel in open.withLockedValue({ Array($0.values) }) { channel.close(promise: nil) }
    }

    func opened(_ channel: any Channel) {
        open.withLockedValue { $0[ObjectIdentifier(channel)] = channel }
        channel.closeFuture.whenComplete { _ in self.open.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) } }
    }
}

/// The function's side of one connection: on accept, gets a verified tunnel from the dialer and
/// joins the two with a relay; closes the function's connection when there is no tunnel to give.
/// While the tunnel is dialled it holds what the function sent and its FIN: with `autoRead` off NIO
/// still reads a socket to its end once the peer half-closes (a request sent with a FIN, or a
/// function that gave up), and both are handed to the relay in order.
final class LocalConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let upstream: Upstream
    let listeners: UpstreamListeners
    private var held: [ByteBuffer] = []
    private var inputEnded = false

    init(upstream: Upstream, listeners: UpstreamListeners) {
        self.upstream = upstream
        self.listeners = listeners
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        held.append(unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            inputEnded = true
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Leaves the pipeline, first passing what it held to the relay behind it.
    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        let (buffers, ended) = (held, inputEnded)
        held = []
        inputEnded = false
        for buffer in buffers { context.fireChannelRead(wrapInboundOut(buffer)) }
        if !buffers.isEmpty { context.fireChannelReadComplete() }
        if ended { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        context.leavePipeline(removalToken: removalToken)
    }

    func channelActive(context: ChannelHandlerContext) {
        let local = context.channel
        let logger = listeners.logger
        let upstream = self.upstream
        listeners.opened(local)
        // docs/DECISIONS.md D65: once the cached certificate has expired, new connections are closed at once.
        if let tls = listeners.dialer.tls, tls.isExpired(at: Date()) {
            logger.error("closing a connection: the function's certificate expired at \(tls.data.notValidAfter) and no newer data could be read", metadata: ["upstream": "\(upstream)"])
            context.close(promise: nil)
            return
        }
        let started = NIODeadline.now()
        let listeners = self.listeners
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        listeners.dialer.connect(upstream).hop(to: context.eventLoop).whenComplete { result in
            switch result {
            case .success(let (tunnel, _)) where !local.isActive:
                tunnel.close(promise: nil)
            case .success(let (tunnel, spare)):
                let (localRelay, tunnelRelay) = RelayHandler.pair { error in
                    if let error { logger.info("tunnel ended on an error", metadata: ["upstream": "\(upstream)", "error": "\(error)"]) }
                }
                do {
                    let localPipeline = local.pipeline.syncOperations
                    try localPipeline.addHandler(localRelay)
                    try tunnel.pipeline.syncOperations.addHandler(tunnelRelay)
                    // What the peer sent before the relay was there goes through it now.
                    if let start = try? tunnel.pipeline.syncOperations.handler(type: TunnelStart.self) {
                        tunnel.pipeline.syncOperations.removeHandler(start, promise: nil)
                    }
                    // And what the function sent (and its FIN) while the tunnel was dialled.
                    local.pipeline.syncOperations.removeHandler(handler.value, promise: nil)
                    local.setOption(.autoRead, value: true).whenComplete { _ in local.read() }
                    tunnel.setOption(.autoRead, value: true).whenComplete { _ in tunnel.read() }
                    if listeners.traceEnabled {
                        let micros = (NIODeadline.now() - started).nanoseconds / 1000
                        logger.debug("tunnel open", metadata: ["upstream": "\(upstream)", "spare": "\(spare)", "ms": "\(Double(micros) / 1000)"])
                    }
                } catch {
                    logger.warning("cannot join a tunnel", metadata: ["upstream": "\(upstream)", "error": "\(error)"])
                    tunnel.close(promise: nil)
                    local.close(promise: nil)
                }
            case .failure(let error):
                logger.error("cannot open a tunnel; closing the function's connection", metadata: ["upstream": "\(upstream)", "error": "\(error)"])
                local.close(promise: nil)
            }
        }
        context.fireChannelActive()
    }
}

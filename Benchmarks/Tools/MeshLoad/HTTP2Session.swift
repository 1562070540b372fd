import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// One HTTP/2 connection that several workers (stream slots) on its event loop share, as a sidecar
/// multiplexes its requests to one upstream over one connection. It connects on first use and again
/// after the connection closes; each request is a new stream.
final class HTTP2Session: @unchecked Sendable {
    // @unchecked: every mutable field is touched on `eventLoop` only.
    typealias Multiplexer = NIOHTTP2Handler.StreamMultiplexer
    typealias Waiter = @Sendable (Result<Multiplexer, any Error>) -> Void

    private enum State {
        case idle
        case connecting(waiters: [Waiter])
        case ready(channel: any Channel, multiplexer: Multiplexer)
    }

    struct NotHTTP2: Error {}

    let target: Target
    let eventLoop: any EventLoop
    private var state = State.idle
    /// Workers that have not finished yet: the connection closes when the last one does, so the
    /// first worker to finish does not cut off its neighbours' streams still in flight.
    private var users = 0

    init(target: Target, eventLoop: any EventLoop) {
        self.target = target
        self.eventLoop = eventLoop
    }

    /// Opens a stream whose pipeline speaks HTTP/1-style parts and ends in `handler`.
    func openStream(handler: ResponseHandler, _ done: @escaping @Sendable (Result<any Channel, any Error>) -> Void) {
        withMultiplexer { result in
            switch result {
            case .failure(let error):
                done(.failure(error))
            case .success(let multiplexer):
                multiplexer.createStreamChannel { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .https))
                        try stream.pipeline.syncOperations.addHandler(handler)
                    }
                }.whenComplete(done)
            }
        }
    }

    func retain() {
        users += 1
    }

    func release() {
        users -= 1
        guard users == 0 else { return }
        if case .ready(let channel, _) = state { channel.close(promise: nil) }
        state = .idle
    }

    private func withMultiplexer(_ waiter: @escaping Waiter) {
        switch state {
        case .ready(let channel, let multiplexer) where channel.isActive:
            waiter(.success(multiplexer))
        case .connecting(var waiters):
            waiters.append(waiter)
            state = .connecting(waiters: waiters)
        case .idle, .ready:
            state = .connecting(waiters: [waiter])
            connect()
        }
    }

    private func connect() {
        let target = self.target
        let ready = eventLoop.makePromise(of: Multiplexer.self)
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client,
                        connectionConfiguration: .init(),
                        streamConfiguration: .init()
                    ) { pushed in pushed.close() }
                    if let tls = target.tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: target.sni), position: .first)
                        try channel.pipeline.syncOperations.addHandler(
                            ALPNCheck(multiplexer: multiplexer, ready: ready), position: .after(channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self)))
                    } else {
                        ready.succeed(multiplexer)
                    }
                }
            }
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    ready.futureResult.whenComplete { self.connected(channel: channel, result: $0) }
                case .failure(let error):
                    ready.fail(error)
                    self.connected(channel: nil, result: .failure(error))
                }
            }
    }

    private func connected(channel: (any Channel)?, result: Result<Multiplexer, any Error>) {
        guard case .connecting(let waiters) = state else { return }
        switch (channel, result) {
        case (let channel?, .success(let multiplexer)):
            state = .ready(channel: channel, multiplexer: multiplexer)
            channel.closeFuture.whenComplete { _ in
                if case .ready(let current, _) = self.state, current === channel { self.state = .idle }
            }
            for waiter in waiters { waiter(.success(multiplexer)) }
        case (_, .failure(let error)):
            state = .idle
            channel?.close(promise: nil)
            for waiter in waiters { waiter(.failure(error)) }
        case (nil, .success):
            state = .idle
            for waiter in waiters { waiter(.failure(NotHTTP2())) }
        }
    }
}

/// Completes `ready` once TLS has negotiated h2 by ALPN; a server that picked anything else would
/// answer the connection preface with garbage, so that is a failed connection.
final class ALPNCheck: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    let ready: EventLoopPromise<NIOHTTP2Handler.StreamMultiplexer>

    init(multiplexer: NIOHTTP2Handler.StreamMultiplexer, ready: EventLoopPromise<NIOHTTP2Handler.StreamMultiplexer>) {
        self.multiplexer = multiplexer
        self.ready = ready
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let negotiated) = event as? TLSUserEvent {
            if negotiated == "h2" { ready.succeed(multiplexer) } else { ready.fail(HTTP2Session.NotHTTP2()) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ready.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        ready.fail(HTTP2Session.NotHTTP2())
        context.fireChannelInactive()
    }
}

import NIOCore
import NIOHTTP1
import NIOHTTP2

extension RequestProcessor {
    /// The application pipeline of an authenticated connection (mesh-identity.md §9.1): ALPN `h2` →
    /// HTTP/2, `http/1.1` → HTTP/1.1, no ALPN → the first bytes decide (the h2 preface means prior
    /// knowledge, as Consul sidecars send for http2/grpc services).
    public func configureHTTP(_ channel: Channel, connection: ClientConnection) -> EventLoopFuture<Void> {
        connections.add(channel, service: connection.serviceName)
        return channel.eventLoop.makeCompletedFuture {
            // One idle timer per connection, whichever protocol it speaks (or before it has said).
            try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: TimeAmount(settings.idleTimeout)))
            switch connection.negotiatedProtocol {
            case "h2": try configureHTTP2Sync(channel, connection: connection)
            case "http/1.1": try configureHTTP1Sync(channel, connection: connection)
            default: try channel.pipeline.syncOperations.addHandler(HTTPVersionDetector(processor: self, connection: connection))
            }
        }
    }

    /// NIO's request decoder with Envoy's header limits, then one handler for the connection: it
    /// reads requests, answers them in order and writes each answer as one buffer.
    func configureHTTP1Sync(_ channel: Channel, connection: ClientConnection) throws {
        let decoder = HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: RequestReader.limits)
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(decoder),
            HTTP1ConnectionHandler(processor: self, connection: connection, limit: limit(for: connection)),
        ])
    }

    /// Each stream gets the HTTP/1-style handler behind NIO's frame-to-HTTP/1 codec. 1024 concurrent
    /// streams (Decision, §9.2).
    func configureHTTP2Sync(_ channel: Channel, connection: ClientConnection) throws {
        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        connectionConfiguration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 1024),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 60 * 1024),
        ]
        let limit = limit(for: connection)
        // Idle for the whole timeout with no stream moving a byte (a stream waiting for Lambda is
        // bounded by the request timeout, far below it): close.
        try channel.pipeline.syncOperations.addHandler(IdleConnectionCloser())
        // Draining (`ChannelShouldQuiesceEvent`): GOAWAY, a PING round trip so that streams the
        // client opened meanwhile are counted, a second GOAWAY with the last stream taken, close
        // when the open streams are done or after the grace time.
        let lifecycle = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(maxIdleTime: nil, maxAge: nil, maxGraceTime: TimeAmount(settings.drainGraceTime), keepalive: nil)
        )
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connectionConfiguration,
            streamConfiguration: NIOHTTP2Handler.StreamConfiguration(),
            streamDelegate: lifecycle.http2StreamDelegate
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try stream.pipeline.syncOperations.addHandler(HTTP1RequestHandler(processor: self, connection: connection, limit: limit))
            }
        }
        try channel.pipeline.syncOperations.addHandler(lifecycle)
    }

    /// The body limit of the service's current invocation type; the request is checked again
    /// against the snapshot it is processed with.
    func limit(for connection: ClientConnection) -> Int {
        store.snapshot.services[connection.serviceName]?.lambda.invocationType == .event ? settings.maximumAsyncPayloadBytes : settings.maximumSyncPayloadBytes
    }
}

/// Reads until the first bytes tell HTTP/2's connection preface from HTTP/1.x, installs that
/// pipeline, hands it the bytes read so far, and steps aside.
final class HTTPVersionDetector: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: used on the channel's event loop only.
    typealias InboundIn = ByteBuffer
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let processor: RequestProcessor
    private let connection: ClientConnection
    private var buffered: ByteBuffer?
    private var decided = false

    init(processor: RequestProcessor, connection: ClientConnection) {
        self.processor = processor
        self.connection = connection
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent || event is ChannelShouldQuiesceEvent, !decided {
            context.close(promise: nil)  // idle: a caller that never sent a byte; or draining
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        let bytes = buffered!.readableBytesView
        let compared = min(bytes.count, Self.preface.count)
        let looksLikeH2 = bytes.prefix(compared).elementsEqual(Self.preface.prefix(compared))
        if looksLikeH2 && bytes.count < Self.preface.count { return }  // need more bytes
        decided = true
        do {
            if looksLikeH2 {
                try processor.configureHTTP2Sync(context.channel, connection: connection)
            } else {
                try processor.configureHTTP1Sync(context.channel, connection: connection)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        let bufferedBytes = buffered!
        buffered = nil
        context.fireChannelRead(wrapInboundOut(bufferedBytes))
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}

extension HTTPVersionDetector {
    typealias InboundOut = ByteBuffer
}

/// Closes a connection (HTTP/2, or one that has not sent a byte yet) when its `IdleStateHandler`
/// reports the idle timeout.
final class IdleConnectionCloser: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

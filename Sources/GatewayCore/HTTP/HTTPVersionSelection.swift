import NIOCore
import NIOHTTP1
import NIOHTTP2

extension RequestProcessor {
    /// The application pipeline of an authenticated connection (docs/ARCHITECTURE.md, HTTP/1.x and HTTP/2): ALPN `h2` →
    /// HTTP/2, `http/1.1` → HTTP/1.1, no ALPN → the first bytes decide (the h2 preface means prior
    /// knowledge, as Consul sidecars send for http2/grpc services).
    public func configureHTTP(_ channel: Channel, connection: ClientConnection) -> EventLoopFuture<Void> {
        var connection = connection
        connection.metrics = metrics.service(connection.serviceName)
        return channel.eventLoop.makeCompletedFuture {
            // One idle timer per connection, whichever protocol it speaks (or before it has said):
            // `SocketActivity`, next to the socket, which also counts the bytes it takes.
            let output = ConnectionOutput(channel: channel, settings: settings, metrics: metrics, flushes: invoker.flushes.batch(for: channel.eventLoop))
            try output.install()
            switch connection.negotiatedProtocol {
            case "h2": try configureHTTP2Sync(channel, connection: connection, output: output)
            case "http/1.1": try configureHTTP1Sync(channel, connection: connection, output: output)
            default: try channel.pipeline.syncOperations.addHandler(HTTPVersionDetector(processor: self, connection: connection, output: output))
            }
            // Followed once its handlers are in place: during shutdown it is drained at once, and a
            // drain sent before they were there reached none of them (the connection then stayed
            // open until its idle timeout).
            connections.add(channel, service: connection.serviceName)
        }
    }

    /// One handler for the connection: it parses requests itself (`HTTP1RequestParser`, with
    /// Envoy's header limits), answers them in order and writes each answer as one buffer.
    func configureHTTP1Sync(_ channel: Channel, connection: ClientConnection, output: ConnectionOutput) throws {
        try channel.pipeline.syncOperations.addHandler(HTTP1ConnectionHandler(processor: self, connection: connection, output: output, limit: limit(for: connection)))
    }

    /// NIO's HTTP/2 handler, then the connection's own (`HTTP2ConnectionHandler`), which reads and
    /// answers each stream's frames (`HTTP2Stream`) without a channel per stream.
    ///
    /// NIO's defences stay on at their defaults: at most 200 stream resets and 200 stream errors in
    /// 30 s (rapid reset), 5 CONTINUATION frames in a row, 10,000 buffered control frames (a client
    /// that sends PINGs or SETTINGS without reading the answers), a bounded header list. Each of
    /// them is a connection error: the gateway sends GOAWAY and, with `HTTP2ConnectionCloser`,
    /// closes the connection instead of reading on. Malformed header blocks, which the gateway
    /// checks itself (`HTTP2FieldRules`), are counted by `HTTP2ConnectionHandler` to the same end:
    /// past 200 on a connection, GOAWAY(ENHANCE_YOUR_CALM) and close.
    func configureHTTP2Sync(_ channel: Channel, connection: ClientConnection, output: ConnectionOutput) throws {
        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        connectionConfiguration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: settings.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 60 * 1024),
        ]
        // Request header blocks are checked by the stream (`HTTP2FieldRules`), in the pass that
        // reads them; the answers' blocks are made well formed (`HPACKHeaders(answerHead:)`).
        connectionConfiguration.headerBlockValidation = .disabled
        let limit = limit(for: connection)
        output.measuresSocketProgress = false
        let process: RequestProcessor.Process = { [output] request, eventLoop, cancellation, completion in
            self.process(request, connection: connection, budget: output.budget, answeringOn: eventLoop, cancellation: cancellation, completion: completion)
        }
        try channel.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server, connectionConfiguration: connectionConfiguration, streamConfiguration: NIOHTTP2Handler.StreamConfiguration()))
        // Draining (`ChannelShouldQuiesceEvent`, `HTTP2Drain`): GOAWAY, a PING round trip so that
        // streams the client opened meanwhile are counted, a second GOAWAY with the last stream
        // taken, close when the open streams are done or after the grace time.
        try channel.pipeline.syncOperations.addHandler(
            HTTP2ConnectionHandler(output: output, drainGraceTime: TimeAmount(settings.drainGraceTime)) { id in
                HTTP2Stream(id: id, processor: self, connection: connection, output: output, limit: limit, process: process)
            }
        )
        try channel.pipeline.syncOperations.addHandler(HTTP2ConnectionCloser(metrics: metrics, output: output))
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
    private let output: ConnectionOutput
    private var buffered: ByteBuffer?
    private var decided = false
    private var timer: Scheduled<Void>?

    init(processor: RequestProcessor, connection: ClientConnection, output: ConnectionOutput) {
        self.processor = processor
        self.connection = connection
        self.output = output
    }

    /// A connection that has not even said which HTTP it speaks within the head timeout is closed
    /// (the HTTP/1.1 pipeline then times its first head itself).
    func handlerAdded(context: ChannelHandlerContext) {
        let metrics = processor.metrics
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: TimeAmount(processor.settings.requestHeadersTimeout)) {
            metrics.connectionClosed(.requestHeadersTimeout)
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !decided, event is IdleStateHandler.IdleStateEvent || event is ChannelShouldQuiesceEvent {
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
        timer?.cancel()
        timer = nil
        do {
            if looksLikeH2 {
                try processor.configureHTTP2Sync(context.channel, connection: connection, output: output)
            } else {
                try processor.configureHTTP1Sync(context.channel, connection: connection, output: output)
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

/// The last handler of an HTTP/2 connection: closes it when its `SocketActivity` reports the idle
/// timeout and no stream is open (a stream waiting for Lambda is bounded by its own request
/// timeout), and when a connection error reaches it.
///
/// An error here is a connection error (NIO's HTTP/2 handler has sent GOAWAY with its code: a
/// CONTINUATION or reset flood, a bad frame, a flow-control violation) or a stream error (it has
/// sent RST_STREAM), or TLS or the socket failed. Without this handler the connection stays open
/// after GOAWAY and every further frame of a flood is read and answered with another GOAWAY; with
/// it, a peer that breaks the protocol loses the connection, as Envoy's default
/// (`stream_error_on_invalid_http_messaging: false`) does.
final class HTTP2ConnectionCloser: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny
    let metrics: GatewayMetrics
    let output: ConnectionOutput

    init(metrics: GatewayMetrics, output: ConnectionOutput) {
        self.metrics = metrics
        self.output = output
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if type(of: event) == IdleStateHandler.IdleStateEvent.self {
            // Idle with a stream open is a request waiting for Lambda (its own timeout bounds it).
            if output.openStreams == 0 { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard context.channel.isActive, !Self.concernsOneStream(error) else { return }
        // A peer that reset the socket is gone, not misbehaving.
        if !(error is IOError) { metrics.connectionClosed(.protocolError) }
        // Answers written in this round (and NIO's GOAWAY) go out before the close: flushed now,
        // not at the end of the read the error may come from (`ConnectionOutput.flushAfterRead`).
        context.flush()
        context.close(promise: nil)
    }

    /// Errors NIO raises for one stream (it has reset that stream; the others go on): a malformed
    /// request's headers, a stream the client reset, a stream over the concurrency limit opened
    /// before the client saw the gateway's SETTINGS. Everything else (a flood, a bad frame or
    /// preface, a compression or flow-control error, TLS, the socket) ends the connection.
    static func concernsOneStream(_ error: any Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.StreamError, is NIOHTTP2Errors.StreamClosed, is NIOHTTP2Errors.NoSuchStream,
            is NIOHTTP2Errors.MaxStreamsViolation,
            is NIOHTTP2Errors.MissingPseudoHeader, is NIOHTTP2Errors.DuplicatePseudoHeader,
            is NIOHTTP2Errors.PseudoHeaderAfterRegularHeader, is NIOHTTP2Errors.UnknownPseudoHeader,
            is NIOHTTP2Errors.UnsupportedPseudoHeader, is NIOHTTP2Errors.InvalidPseudoHeaders,
            is NIOHTTP2Errors.InvalidPseudoHeaderValue, is NIOHTTP2Errors.MissingHostHeader,
            is NIOHTTP2Errors.DuplicateHostHeader, is NIOHTTP2Errors.EmptyPathHeader,
            is NIOHTTP2Errors.ForbiddenHeaderField, is NIOHTTP2Errors.TrailersWithoutEndStream,
            is NIOHTTP2Errors.ContentLengthViolated, is NIOHTTP2Errors.ContentLengthHeadersMismatch,
            is NIOHTTP2Errors.ContentLengthHeaderNegative, is NIOHTTP2Errors.ContentLengthHeaderMalformedValue:
            return true
        default:
            return false
        }
    }
}

import NIOCore
import NIOHTTP2

/// An HTTP/2 connection's requests, handled as frames on the connection itself: no channel, no
/// pipeline and no HTTP/1 translation per stream. It sits behind NIO's `NIOHTTP2Handler` (frames,
/// HPACK, stream states, flow control of what the gateway sends, the protocol's defences), routes
/// each stream's frames and events to that stream's `HTTP2Stream`, gives the client back its
/// flow-control window as the gateway takes in what it sent, and ends the connection gracefully
/// when it is drained (`HTTP2Drain`). Flushes asked for while it reads wait for the read's end
/// (`ConnectionOutput.flushAfterRead`).
final class HTTP2ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used on the channel's event loop only.
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let makeStream: (HTTP2StreamID) -> HTTP2Stream
    private let output: ConnectionOutput
    /// The streams open now (at most the concurrency limit, a few as a rule): found by a scan of
    /// their IDs, which costs less than hashing one for a dictionary.
    private var streams: [HTTP2Stream] = []
    /// Streams a frame came for in the read under way, to be told when it completes.
    private var readThisTime: [HTTP2Stream] = []
    /// The windows the gateway keeps open for the client (NIO's defaults, as its stream channels had).
    private let targetStreamWindow: Int
    private let targetConnectionWindow: Int
    /// Streams reset as malformed on this connection (`HTTP2FieldRules`). NIO counted them as
    /// stream errors when it checked the fields, and ended a connection past 200 of them; the
    /// gateway's own resets do not reach NIO's counts, so they are counted here, to the same limit.
    private var malformedStreams = 0
    static let maximumMalformedStreams = 200
    /// The graceful end when the connection is drained, and how long the drain may last before the
    /// connection closes anyway (from the first GOAWAY, whatever the client does).
    private var drain = HTTP2Drain()
    private let drainGraceTime: TimeAmount
    private var graceTimer: Scheduled<Void>?

    init(
        output: ConnectionOutput, drainGraceTime: TimeAmount = .seconds(30), targetStreamWindow: Int = 65535, targetConnectionWindow: Int = 65535,
        makeStream: @escaping (HTTP2StreamID) -> HTTP2Stream
    ) {
        self.output = output
        self.makeStream = makeStream
        self.drainGraceTime = drainGraceTime
        self.targetStreamWindow = targetStreamWindow
        self.targetConnectionWindow = targetConnectionWindow
    }

    private func stream(_ id: HTTP2StreamID) -> HTTP2Stream? {
        for stream in streams where stream.id == id { return stream }
        return nil
    }

    private func removeStream(_ id: HTTP2StreamID) -> HTTP2Stream? {
        guard let index = streams.firstIndex(where: { $0.id == id }) else { return nil }
        return streams.remove(at: index)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        output.readStarted()
        let frame = unwrapInboundIn(data)
        let stream: HTTP2Stream
        if let open = self.stream(frame.streamID) {
            stream = open
        } else if case .headers = frame.payload {
            // A new stream: NIO has checked it may be opened (its ID, the concurrency limit).
            stream = makeStream(frame.streamID)
            streams.append(stream)
            output.openStreams += 1
            drain.streamOpened(frame.streamID)
        } else {
            // The connection's own frames (SETTINGS, PING, GOAWAY): NIO answers them. A PING's
            // acknowledgement may be the one a drain waits for.
            if case .ping(let data, ack: true) = frame.payload {
                perform(drain.receivedPingAck(data, openStreams: streams.count), context: context)
            }
            return
        }
        if !readThisTime.contains(where: { $0 === stream }) { readThisTime.append(stream) }
        let wasMalformed = stream.isMalformed
        stream.read(frame.payload, context: context)
        if stream.isMalformed && !wasMalformed { malformedStreamReset(frame.streamID, context: context) }
    }

    /// One more malformed stream: past the limit, the connection ends as NIO ended it, GOAWAY with
    /// ENHANCE_YOUR_CALM and a close (`HTTP2ConnectionCloser` counts it as a protocol error and
    /// flushes before it closes).
    private func malformedStreamReset(_ id: HTTP2StreamID, context: ChannelHandlerContext) {
        malformedStreams += 1
        guard malformedStreams > Self.maximumMalformedStreams else { return }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: id, errorCode: .enhanceYourCalm, opaqueData: nil))), promise: nil)
        context.fireErrorCaught(TooManyMalformedStreams())
    }

    /// The connection error of a client that sent more malformed streams than `maximumMalformedStreams`.
    struct TooManyMalformedStreams: Error, CustomStringConvertible {
        var description: String { "more than \(HTTP2ConnectionHandler.maximumMalformedStreams) malformed streams on one connection" }
    }

    /// A stream's `readComplete` only touches its body timer (it reads nothing), so the list is
    /// walked in place and emptied keeping its storage: no copy, no allocation per read.
    func channelReadComplete(context: ChannelHandlerContext) {
        for stream in readThisTime { stream.readComplete(context: context) }
        readThisTime.removeAll(keepingCapacity: true)
        output.readEnded(context)
        context.fireChannelReadComplete()
    }

    /// The streams' events end here (nothing behind this handler needs them, and each handler an
    /// event passes costs a dynamic cast or two); window changes, the most frequent, are tried first.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The runtime's cast is asked only of an event of the type: a failed `as?` of an `Any`
        // costs some 300 instructions, and every stream sends several events through here.
        let kind = type(of: event)
        if kind == NIOHTTP2WindowUpdatedEvent.self, let window = event as? NIOHTTP2WindowUpdatedEvent {
            windowUpdated(window, context: context)
        } else if kind == StreamClosedEvent.self, let closed = event as? StreamClosedEvent {
            if let stream = removeStream(closed.streamID) {
                output.openStreams -= 1
                stream.closed(context: context)
                perform(drain.streamClosed(openStreams: streams.count), context: context)
            }
        } else if kind == ChannelShouldQuiesceEvent.self {
            perform(drain.quiesce(), context: context)
            context.fireUserInboundEventTriggered(event)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Every stream still open ends with the connection.
    func channelInactive(context: ChannelHandlerContext) {
        stopGraceTimer()
        let open = streams
        streams.removeAll()
        output.openStreams -= open.count
        for stream in open { stream.closed(context: context) }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopGraceTimer()
        let open = streams
        streams.removeAll()
        for stream in open { stream.closed(context: context) }
    }

    /// NIO reports each change of a window. The client's window for a stream, or for the whole
    /// connection, is opened again to its target once half of it is used, as NIO's stream channels
    /// do (the gateway holds a request's body in memory up to its limit anyway). The window the
    /// client opens for an answer is a sign of progress for the send timeout.
    private func windowUpdated(_ event: NIOHTTP2WindowUpdatedEvent, context: ChannelHandlerContext) {
        if let inbound = event.inboundWindowSize {
            let isConnection = event.streamID == .rootStream
            let target = isConnection ? targetConnectionWindow : targetStreamWindow
            if inbound <= target / 2, isConnection || stream(event.streamID)?.isReadingBody == true {
                context.write(wrapOutboundOut(HTTP2Frame(streamID: event.streamID, payload: .windowUpdate(windowSizeIncrement: target - inbound))), promise: nil)
                output.flushAfterRead(context)
            }
        }
        // Progress only when the client opened a stream's window and the socket takes bytes: a
        // client that sends DATA or tiny WINDOW_UPDATEs but reads nothing makes none.
        if let outbound = event.outboundWindowSize, let stream = stream(event.streamID), stream.outboundWindowChanged(to: outbound), context.channel.isWritable {
            output.streamBecameWritable()
        }
    }

    // MARK: Drain

    /// The connection ends: the drain's timer goes (it holds the context until it fires).
    private func stopGraceTimer() {
        graceTimer?.cancel()
        graceTimer = nil
    }

    private func perform(_ action: HTTP2Drain.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .sendGoAwayAndPing(let data):
            context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))), promise: nil)
            context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(data, ack: false))), promise: nil)
            output.flushAfterRead(context)
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            graceTimer = context.eventLoop.scheduleTask(in: drainGraceTime) { loopBound.value.close(promise: nil) }
        case .sendGoAway(let lastStreamID, let close):
            context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))), promise: nil)
            if close {
                // No stream is open: the GOAWAY goes out now (not at the end of the read), then the close.
                context.flush()
                context.close(promise: nil)
            } else {
                // The grace timer started with the first GOAWAY goes on.
                output.flushAfterRead(context)
            }
        case .close:
            // The frame that ended the last stream was just written: its flush comes first, at the
            // end of the read or of the round (`FlushBatch`), then this task.
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.eventLoop.execute { loopBound.value.close(promise: nil) }
        }
    }
}

import LambdaPayload
import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import GatewayCore

/// The drain's decisions (`HTTP2Drain`), as NIO's connection-management handler made them.
@Suite("HTTP/2 drain decisions")
struct HTTP2DrainDecisionTests {
    static let ping = HTTP2PingData(withInteger: 42)

    @Test func goAwayForEveryStreamAndAPingFirstThenTheLastStreamOnTheAcknowledgement() {
        var drain = HTTP2Drain(pingData: Self.ping)
        drain.streamOpened(HTTP2StreamID(1))
        drain.streamOpened(HTTP2StreamID(5))
        drain.streamOpened(HTTP2StreamID(3))
        #expect(drain.receivedPingAck(Self.ping, openStreams: 1) == .none, "no drain asked for yet")
        #expect(drain.quiesce() == .sendGoAwayAndPing(Self.ping))
        #expect(drain.quiesce() == .none, "once")
        #expect(drain.streamClosed(openStreams: 0) == .none, "not before the second GOAWAY: the client may have opened a stream not seen yet")
        drain.streamOpened(HTTP2StreamID(7))
        #expect(drain.receivedPingAck(HTTP2PingData(withInteger: 7), openStreams: 1) == .none, "another PING's acknowledgement")
        #expect(drain.receivedPingAck(Self.ping, openStreams: 1) == .sendGoAway(lastStreamID: HTTP2StreamID(7), close: false))
        #expect(drain.state == .closing)
        #expect(drain.receivedPingAck(Self.ping, openStreams: 1) == .none, "one second GOAWAY")
        #expect(drain.streamClosed(openStreams: 1) == .none)
        #expect(drain.streamClosed(openStreams: 0) == .close)
        #expect(drain.state == .closed)
        #expect(drain.streamClosed(openStreams: 0) == .none)
    }

    @Test func withNoStreamOpenTheAcknowledgementClosesAtOnce() {
        var drain = HTTP2Drain(pingData: Self.ping)
        #expect(drain.quiesce() == .sendGoAwayAndPing(Self.ping))
        #expect(drain.receivedPingAck(Self.ping, openStreams: 0) == .sendGoAway(lastStreamID: .rootStream, close: true))
        #expect(drain.state == .closed)
    }
}

/// The drain carried out by the connection's handler on an embedded channel: the frames it writes,
/// when it flushes them, and when it closes.
@Suite("HTTP/2 drain on an embedded channel")
struct HTTP2DrainHandlerTests {
    /// Every frame written and flushed since the last call.
    func frames(_ stream: EmbeddedHTTP2Stream) throws -> [HTTP2Frame] {
        var frames: [HTTP2Frame] = []
        while let frame = try stream.channel.readOutbound(as: HTTP2Frame.self) { frames.append(frame) }
        return frames
    }

    /// Drains the connection: the first GOAWAY (every stream) and the PING are flushed at once;
    /// returns the PING's payload.
    func quiesce(_ stream: EmbeddedHTTP2Stream) throws -> HTTP2PingData {
        stream.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        let written = try frames(stream)
        try #require(written.count == 2)
        guard case .goAway(let last, .noError, _) = written[0].payload, last == .maxID else {
            Issue.record("expected GOAWAY for every stream, got \(written[0].payload)")
            return HTTP2PingData()
        }
        guard case .ping(let data, ack: false) = written[1].payload else {
            Issue.record("expected a PING, got \(written[1].payload)")
            return HTTP2PingData()
        }
        return data
    }

    func acknowledge(_ data: HTTP2PingData, on stream: EmbeddedHTTP2Stream) throws {
        try stream.channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .ping(data, ack: true)))
    }

    @Test func aStreamOpenDuringTheDrainIsAnsweredAndTheConnectionClosesAfterIt() throws {
        let stream = try EmbeddedHTTP2Stream(defersFlushes: true, closesStreams: true)
        try stream.send(EmbeddedHTTP2Stream.get("/a"), endStream: true)
        let data = try quiesce(stream)
        try acknowledge(HTTP2PingData(withInteger: data.integer &+ 1), on: stream)
        #expect(try frames(stream).isEmpty, "another PING's acknowledgement changes nothing")
        try acknowledge(data, on: stream)
        let second = try frames(stream)
        guard second.count == 1, case .goAway(let last, .noError, _) = second[0].payload else {
            Issue.record("expected the second GOAWAY, got \(second)")
            return
        }
        #expect(last == EmbeddedHTTP2Stream.id, "the last stream the client opened")
        #expect(stream.channel.isActive, "its stream is still open")
        // (A bodiless answer: on this channel a HEADERS frame's END_STREAM closes the stream, as NIO's does.)
        stream.answer(LambdaHTTPResponse(status: 204))
        #expect(try stream.written() == ["HEADERS :status=204 END_STREAM"], "the answer goes out before the close")
        #expect(!stream.channel.isActive, "closed as its last stream ended")
    }

    @Test func withNoStreamOpenTheConnectionClosesOnTheAcknowledgement() throws {
        let stream = try EmbeddedHTTP2Stream()
        let data = try quiesce(stream)
        try acknowledge(data, on: stream)
        let second = try frames(stream)
        guard second.count == 1, case .goAway(let last, .noError, _) = second[0].payload else {
            Issue.record("expected the second GOAWAY, flushed before the close, got \(second)")
            return
        }
        #expect(last == .rootStream)
        #expect(!stream.channel.isActive)
    }

    /// A stream that outlasts the grace time is cut off, counted from the drain's first GOAWAY,
    /// whether the client acknowledged the PING or not: one that never does (and so could keep
    /// opening streams under the first GOAWAY) is not kept open for it.
    @Test(arguments: [true, false])
    func aDrainIsCutOffAfterTheGraceTime(acknowledged: Bool) throws {
        let stream = try EmbeddedHTTP2Stream(closesStreams: true, drainGraceTime: .seconds(5))
        try stream.send(EmbeddedHTTP2Stream.get("/a"), endStream: true)
        let data = try quiesce(stream)
        if acknowledged {
            try acknowledge(data, on: stream)
            _ = try frames(stream)
        }
        stream.channel.embeddedEventLoop.advanceTime(by: .milliseconds(4_999))
        #expect(stream.channel.isActive)
        stream.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!stream.channel.isActive)
    }

    /// What a read brings answered is flushed when the read ends, in one write: here the second
    /// GOAWAY, written as the PING's acknowledgement is read while a stream is open.
    @Test func aFlushAskedForDuringAReadWaitsForItsEnd() throws {
        let stream = try EmbeddedHTTP2Stream(closesStreams: true)
        try stream.send(EmbeddedHTTP2Stream.get("/a"), endStream: true)
        let data = try quiesce(stream)
        stream.channel.pipeline.fireChannelRead(HTTP2Frame(streamID: .rootStream, payload: .ping(data, ack: true)))
        #expect(try frames(stream).isEmpty, "held during the read")
        stream.channel.pipeline.fireChannelReadComplete()
        #expect(try frames(stream).count == 1, "flushed at its end")
    }
}

/// A connection accepted while the gateway shuts down is drained at once, by the handlers it was
/// given: an idle HTTP/1.1 connection closes.
@Suite("Draining a connection accepted during shutdown")
struct DrainDuringShutdownTests {
    @Test func aConnectionAcceptedAfterDrainAllIsDrainedByItsHandlers() throws {
        let channel = EmbeddedChannel()
        let processor = try EmbeddedProcessor.make(on: channel, settings: ProcessingSettings())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        processor.connections.drainAll()
        let connection = ClientConnection(serviceName: "orders", caller: .direct, negotiatedProtocol: "http/1.1", peerIP: "127.0.0.1")
        try processor.configureHTTP(channel, connection: connection).wait()
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive, "closed as an idle connection being drained")
        #expect(processor.connections.count == 0)
    }
}

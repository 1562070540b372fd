import LambdaInvoke
import LambdaPayload
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import GatewayCore

/// The connection's HTTP/2 handler as `configureHTTP2Sync` installs it behind NIO's, on an
/// `EmbeddedChannel` (frames in and out, as NIO's handler passes them, no socket): the test plays
/// stream 1 and answers each request itself.
final class EmbeddedHTTP2Stream {
    static let id = HTTP2StreamID(1)
    let channel = EmbeddedChannel()
    let processor: RequestProcessor
    let output: ConnectionOutput
    private(set) var requests: [GatewayRequest] = []
    private var completion: RequestProcessor.Completion?
    private(set) var cancellation: RequestCancellation?

    /// Plays NIO's HTTP/2 handler's part in closing a stream whose request has ended: writing a
    /// HEADERS frame with END_STREAM closes it (a DATA frame's would close it as it is flushed).
    final class StreamCloser: ChannelOutboundHandler {
        typealias OutboundIn = HTTP2Frame
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            let frame = unwrapOutboundIn(data)
            context.write(data, promise: promise)
            guard case .headers(let headers) = frame.payload, headers.endStream else { return }
            context.fireUserInboundEventTriggered(StreamClosedEvent(streamID: frame.streamID, reason: nil))
        }
    }

    /// `defersFlushes`: answers are flushed when the loop runs its tasks, as on the gateway's sockets.
    /// `closesStreams`: an answer's END_STREAM closes its stream, as NIO's handler does.
    /// `refusesAtOnce`: every request is answered 403 within the call that starts it, as a refusal is.
    init(limit: Int = 1024, defersFlushes: Bool = false, closesStreams: Bool = false, refusesAtOnce: Bool = false, drainGraceTime: TimeAmount = .seconds(30)) throws {
        let settings = ProcessingSettings()
        processor = try EmbeddedProcessor.make(on: channel, settings: settings)
        let connection = ClientConnection(serviceName: "orders", caller: .direct, negotiatedProtocol: "h2", peerIP: "127.0.0.1")
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        output = ConnectionOutput(channel: channel, settings: settings, metrics: processor.metrics, flushes: defersFlushes ? FlushBatch(eventLoop: channel.eventLoop) : nil)
        output.measuresSocketProgress = false  // as `configureHTTP2Sync` sets it
        let process: RequestProcessor.Process = { [unowned self] request, _, cancellation, completion in
            requests.append(request)
            self.cancellation = cancellation
            if refusesAtOnce {
                completion(RequestProcessor.Processed(testResponse: LambdaHTTPResponse(status: 403), heldBytes: 0))
                return
            }
            self.completion = completion
        }
        let handler = HTTP2ConnectionHandler(output: output, drainGraceTime: drainGraceTime) { [processor, output] id in
            HTTP2Stream(id: id, processor: processor, connection: connection, output: output, limit: limit, process: process)
        }
        if closesStreams { try channel.pipeline.syncOperations.addHandler(StreamCloser()) }
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    func send(_ headers: [(String, String)], endStream: Bool) throws {
        try channel.writeInbound(HTTP2Frame(streamID: Self.id, payload: .headers(.init(headers: HPACKHeaders(headers), endStream: endStream))))
    }

    func send(_ body: String, endStream: Bool) throws {
        try channel.writeInbound(HTTP2Frame(streamID: Self.id, payload: .data(.init(data: .byteBuffer(ByteBuffer(string: body)), endStream: endStream))))
    }

    func answer(_ response: LambdaHTTPResponse, runningTheLoop: Bool = true) {
        completion?(RequestProcessor.Processed(testResponse: response, heldBytes: 0))
        if runningTheLoop { channel.embeddedEventLoop.run() }
    }

    /// NIO's handler reports that the stream closed (both ends done, or a reset).
    func streamClosed(_ reason: HTTP2ErrorCode? = nil) {
        channel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: Self.id, reason: reason))
    }

    /// The frames written since the last call, each as one line (with its stream unless it is 1).
    func written() throws -> [String] {
        var lines: [String] = []
        while let written = try channel.readOutbound(as: HTTP2Frame.self) {
            let prefix = written.streamID == Self.id ? "" : "stream \(written.streamID): "
            switch written.payload {
            case .headers(let headers):
                lines.append(prefix + "HEADERS \(headers.headers.map { "\($0.name)=\($0.value)" }.joined(separator: " "))\(headers.endStream ? " END_STREAM" : "")")
            case .data(let data):
                guard case .byteBuffer(let buffer) = data.data else { continue }
                lines.append(prefix + "DATA \(String(buffer: buffer))\(data.endStream ? " END_STREAM" : "")")
            case .rstStream(let code):
                lines.append(prefix + "RST_STREAM \(code)")
            case .windowUpdate(let increment):
                lines.append(prefix + "WINDOW_UPDATE \(increment)")
            default:
                lines.append(prefix + "\(written.payload)")
            }
        }
        return lines
    }

    static func get(_ path: String = "/a", method: String = "GET", _ extra: [(String, String)] = []) -> [(String, String)] {
        [(":method", method), (":scheme", "https"), (":path", path), (":authority", "orders")] + extra
    }
}

@Suite("HTTP/2 connection handler on an embedded channel")
struct HTTP2ConnectionHandlerTests {
    @Test func anAnswerIsOneHeadersFrameAndOneDataFrameThatEndsTheStream() throws {
        let stream = try EmbeddedHTTP2Stream()
        try stream.send(EmbeddedHTTP2Stream.get("/a", method: "POST", [("content-type", "text/plain")]), endStream: false)
        try stream.send("hello", endStream: true)
        #expect(stream.requests.map { "\($0.method) \($0.target) \(String(buffer: $0.body))" } == ["POST /a hello"])
        #expect(stream.requests.first?.headers.map(\.name) == ["host", "content-type"], ":authority became host")
        let response = LambdaHTTPResponse(
            status: 201,
            headers: [HTTPField("Content-Type", "text/plain"), HTTPField("content-length", "999"), HTTPField("connection", "close"), HTTPField("x-ok", "1")],
            body: ByteBuffer(string: "made")
        )
        stream.answer(response)
        #expect(
            try stream.written() == ["HEADERS :status=201 content-type=text/plain x-ok=1 content-length=4", "DATA made END_STREAM"],
            "names in lower case, no connection-specific field, the length of the body sent"
        )
        #expect(stream.channel.isActive, "the stream ends with its END_STREAM, not a close")
    }

    @Test func onTheGatewaysSocketsAnAnswerIsFlushedWhenTheLoopRunsItsTasks() throws {
        let stream = try EmbeddedHTTP2Stream(defersFlushes: true)
        try stream.send(EmbeddedHTTP2Stream.get("/a"), endStream: true)
        stream.answer(LambdaHTTPResponse(status: 200, body: ByteBuffer(string: "ok")), runningTheLoop: false)
        #expect(try stream.written() == [], "written, not yet flushed")
        stream.channel.embeddedEventLoop.run()
        #expect(try stream.written() == ["HEADERS :status=200 content-length=2", "DATA ok END_STREAM"])
    }

    @Test func anAnswerMadeWithinTheReadThatBroughtTheRequestIsWrittenAfterTheRead() throws {
        // Flushes wait for the end of a read (`ConnectionOutput.flushAfterRead`), and a draining
        // connection closes as its last stream ends: a refusal made within the read waits for it.
        let stream = try EmbeddedHTTP2Stream(refusesAtOnce: true)
        try stream.send(EmbeddedHTTP2Stream.get("/a"), endStream: true)
        #expect(stream.requests.count == 1)
        #expect(try stream.written() == [])
        stream.channel.embeddedEventLoop.run()
        #expect(try stream.written() == ["HEADERS :status=403 content-length=0 END_STREAM"])
    }

    @Test func theAnswerThatEndsTheLastOpenStreamIsFlushedAtOnce() throws {
        // A draining connection closes as its last stream ends: that answer cannot wait.
        let stream = try EmbeddedHTTP2Stream(defersFlushes: true, closesStreams: true)
        try stream.send(EmbeddedHTTP2Stream.get("/a"), endStream: true)
        #expect(stream.output.openStreams == 1)
        stream.answer(LambdaHTTPResponse(status: 204), runningTheLoop: false)
        #expect(stream.output.openStreams == 0)
        #expect(try stream.written() == ["HEADERS :status=204 END_STREAM"])
    }

    @Test(arguments: [("GET", 200, "", " content-length=0"), ("HEAD", 200, "body", " content-length=4"), ("GET", 204, "", ""), ("GET", 304, "", "")])
    func anAnswerWithoutABodyIsOneHeadersFrame(method: String, status: Int, body: String, length: String) throws {
        let stream = try EmbeddedHTTP2Stream()
        try stream.send(EmbeddedHTTP2Stream.get(method: method), endStream: true)
        stream.answer(LambdaHTTPResponse(status: status, body: ByteBuffer(string: body)))
        #expect(try stream.written() == ["HEADERS :status=\(status)\(length) END_STREAM"], "no content-length on a 204 or 304, as on HTTP/1.1")
    }

    @Test func anAnswerToAHEADWithoutAuthorityIsHeadersOnly() throws {
        let stream = try EmbeddedHTTP2Stream()
        try stream.send(EmbeddedHTTP2Stream.get(method: "HEAD").filter { $0.0 != ":authority" }, endStream: true)
        let written = try stream.written()
        #expect(written.count == 1 && written[0].hasPrefix("HEADERS :status=400 ") && written[0].hasSuffix("END_STREAM"), "\(written)")
    }

    /// NIO refuses a frame that breaks a stream's rules without resetting the stream itself.
    @Test func anAnswerNIORefusesResetsItsStreamInsteadOfLeavingItOpen() throws {
        let stream = try EmbeddedHTTP2Stream()
        try stream.channel.pipeline.syncOperations.addHandler(RefusingDataFrames(), position: .first)
        try stream.send(EmbeddedHTTP2Stream.get(), endStream: true)
        stream.answer(LambdaHTTPResponse(status: 200, body: ByteBuffer(string: "refused")))
        #expect(try stream.written() == ["HEADERS :status=200 content-length=7", "RST_STREAM \(HTTP2ErrorCode.internalError)"])
    }

    @Test func onlyAWindowTheClientOpensWhileTheSocketTakesBytesIsProgress() throws {
        let stream = try EmbeddedHTTP2Stream()
        try stream.send(EmbeddedHTTP2Stream.get(method: "POST"), endStream: false)
        func report(_ outbound: Int) -> Bool {
            let before = stream.output.lastProgress
            stream.channel.pipeline.fireUserInboundEventTriggered(NIOHTTP2WindowUpdatedEvent(streamID: EmbeddedHTTP2Stream.id, inboundWindowSize: nil, outboundWindowSize: outbound))
            return stream.output.lastProgress != before
        }
        #expect(!report(100), "the first report sets the mark")
        #expect(!report(100), "the client's DATA leaves the answer's window as it was")
        #expect(!report(40), "the gateway's own DATA shrinks it")
        #expect(report(41), "the client opened it")
    }

    @Test func aBodyOverTheLimitIsAnswered413AndTheStreamResetWithoutACall() throws {
        let stream = try EmbeddedHTTP2Stream(limit: 4)
        try stream.send(EmbeddedHTTP2Stream.get(method: "POST"), endStream: false)
        try stream.send("12345", endStream: false)
        stream.channel.embeddedEventLoop.run()
        let written = try stream.written()
        #expect(written.count == 3)
        #expect(written.first?.hasPrefix("HEADERS :status=413 ") == true)
        #expect(written.dropFirst().first?.hasSuffix("END_STREAM") == true)
        #expect(written.last == "RST_STREAM \(HTTP2ErrorCode.noError)", "the client may still be sending its body: it is asked to stop (RFC 9113 §8.1)")
        #expect(stream.requests.isEmpty)
        #expect(stream.channel.isActive, "the connection goes on")
    }

    @Test func anEarlyAnswerToACompleteRequestIsNotFollowedByAReset() throws {
        let stream = try EmbeddedHTTP2Stream()
        try stream.send(EmbeddedHTTP2Stream.get().filter { $0.0 != ":authority" }, endStream: true)
        stream.channel.embeddedEventLoop.run()
        let written = try stream.written()
        #expect(written.count == 2 && written.first?.hasPrefix("HEADERS :status=400 ") == true, "\(written)")
        #expect(written.last?.hasSuffix("END_STREAM") == true, "the answer's END_STREAM closes the stream: the client sent all of its own")
    }

    @Test func theClientsWindowsAreOpenedAgainOnlyWhileABodyArrives() throws {
        let stream = try EmbeddedHTTP2Stream(limit: 1 << 20)
        try stream.send(EmbeddedHTTP2Stream.get(method: "POST"), endStream: false)
        stream.channel.pipeline.fireUserInboundEventTriggered(NIOHTTP2WindowUpdatedEvent(streamID: EmbeddedHTTP2Stream.id, inboundWindowSize: 40_000, outboundWindowSize: nil))
        #expect(try stream.written().isEmpty, "more than half of the window is left")
        stream.channel.pipeline.fireUserInboundEventTriggered(NIOHTTP2WindowUpdatedEvent(streamID: EmbeddedHTTP2Stream.id, inboundWindowSize: 30_000, outboundWindowSize: nil))
        stream.channel.pipeline.fireUserInboundEventTriggered(NIOHTTP2WindowUpdatedEvent(streamID: .rootStream, inboundWindowSize: 1_000, outboundWindowSize: nil))
        let updates = try stream.written()
        #expect(updates == ["WINDOW_UPDATE 35535", "stream HTTP2StreamID(0): WINDOW_UPDATE 64535"], "\(updates)")
        try stream.send("end", endStream: true)
        stream.channel.pipeline.fireUserInboundEventTriggered(NIOHTTP2WindowUpdatedEvent(streamID: EmbeddedHTTP2Stream.id, inboundWindowSize: 100, outboundWindowSize: nil))
        #expect(try stream.written().isEmpty, "the request is complete: its stream's window stays as it is")
    }

    @Test func aGoAheadIsAnInformationalHeadersFrame() throws {
        let stream = try EmbeddedHTTP2Stream()
        try stream.send(EmbeddedHTTP2Stream.get("/a", method: "POST", [("expect", "100-continue")]), endStream: false)
        #expect(try stream.written() == ["HEADERS :status=100"])
        try stream.send("b", endStream: true)
        #expect(stream.requests.count == 1)
    }

    @Test func aRequestWhileTheConnectionsAnswersWaitUnreadIsRefusedWithoutACall() throws {
        let stream = try EmbeddedHTTP2Stream()
        stream.output.budget.take(stream.output.budget.limit)
        try stream.send(EmbeddedHTTP2Stream.get(), endStream: true)
        #expect(try stream.written() == ["RST_STREAM \(HTTP2ErrorCode.refusedStream)"])
        #expect(stream.requests.isEmpty)
    }

    @Test func aStreamClosedBeforeItsAnswerCancelsTheRequestAndWritesNothing() throws {
        let stream = try EmbeddedHTTP2Stream()
        try stream.send(EmbeddedHTTP2Stream.get(), endStream: true)
        let cancellation = try #require(stream.cancellation)
        #expect(!cancellation.isCancelled)
        stream.streamClosed(.cancel)
        #expect(cancellation.isCancelled)
        stream.answer(LambdaHTTPResponse(status: 200, body: ByteBuffer(string: "late")))
        #expect(try stream.written().isEmpty)
    }
}

/// Fails the write of every DATA frame, as NIO's handler does for a frame that breaks its stream's
/// rules (a stream error): the frame never leaves.
final class RefusingDataFrames: ChannelOutboundHandler {
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .data = unwrapOutboundIn(data).payload {
            promise?.fail(NIOHTTP2Errors.contentLengthViolated())
            return
        }
        context.write(data, promise: promise)
    }
}

@Suite("HTTP/2 connection closer on an embedded channel")
struct HTTP2ConnectionCloserTests {
    /// Raises a connection error from within a read for a frame of stream 3, as NIO's HTTP/2
    /// handler does for a bad frame; passes the others on.
    final class ErrorInRead: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard unwrapInboundIn(data).streamID == 3 else {
                context.fireChannelRead(data)
                return
            }
            context.fireErrorCaught(ChannelError.inappropriateOperationForState)
        }
    }

    /// A flush asked for during a read waits for the read's end (`ConnectionOutput.flushAfterRead`);
    /// a connection error later in the same read closes the connection before that end, so the
    /// closer flushes first: here the drain's second GOAWAY, written as the read brought the PING's
    /// acknowledgement.
    @Test func aConnectionErrorWithinAReadFlushesWhatTheReadHeldBeforeItCloses() throws {
        let stream = try EmbeddedHTTP2Stream(closesStreams: true)
        try stream.channel.pipeline.syncOperations.addHandler(ErrorInRead(), position: .first)
        try stream.channel.pipeline.syncOperations.addHandler(HTTP2ConnectionCloser(metrics: stream.processor.metrics, output: stream.output))
        try stream.send(EmbeddedHTTP2Stream.get("/a"), endStream: true)
        stream.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        _ = try stream.channel.readOutbound(as: HTTP2Frame.self)  // the first GOAWAY
        guard case .ping(let data, ack: false)? = try stream.channel.readOutbound(as: HTTP2Frame.self)?.payload else {
            Issue.record("expected the drain's PING")
            return
        }
        stream.channel.pipeline.fireChannelRead(HTTP2Frame(streamID: .rootStream, payload: .ping(data, ack: true)))
        #expect(try stream.channel.readOutbound(as: HTTP2Frame.self) == nil, "held for the read's end")
        stream.channel.pipeline.fireChannelRead(HTTP2Frame(streamID: 3, payload: .data(.init(data: .byteBuffer(ByteBuffer())))))
        #expect(!stream.channel.isActive)
        guard case .goAway(let last, .noError, _)? = try stream.channel.readOutbound(as: HTTP2Frame.self)?.payload else {
            Issue.record("expected the second GOAWAY, flushed before the close")
            return
        }
        #expect(last == EmbeddedHTTP2Stream.id)
    }

    @Test func whatWasWrittenInTheRoundGoesOutBeforeAConnectionErrorClosesIt() throws {
        let channel = EmbeddedChannel()
        let metrics = GatewayMetrics()
        let output = ConnectionOutput(channel: channel, settings: ProcessingSettings(), metrics: metrics)
        try channel.pipeline.syncOperations.addHandler(HTTP2ConnectionCloser(metrics: metrics, output: output))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // An answer written and waiting for the end of the round, then a connection error.
        channel.write(ByteBuffer(string: "answer"), promise: nil)
        channel.pipeline.fireErrorCaught(ChannelError.inappropriateOperationForState)
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "answer"))
    }
}

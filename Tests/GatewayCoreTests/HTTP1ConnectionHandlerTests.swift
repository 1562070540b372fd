import AWSCredentials
import AWSSigV4
import Atomics
import LambdaInvoke
import LambdaPayload
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import TestSupport
import Testing

@testable import GatewayCore

/// The connection handler as `configureHTTP1Sync` sets it up (it parses the bytes itself), on an
/// `EmbeddedChannel` (no socket, a clock the test moves): the test answers each request itself.
/// Synchronous tests only: an embedded channel is used on the thread that made it.
final class EmbeddedHTTP1Connection {
    /// Records the reads the handler passes on.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var count = 0

        func read(context: ChannelHandlerContext) {
            count += 1
            context.read()
        }
    }

    /// Requests handed to processing, in order, each with the promise its answer completes.
    final class Started {
        var requests: [(request: GatewayRequest, completion: RequestProcessor.Completion)] = []
    }

    let channel = EmbeddedChannel()
    let processor: RequestProcessor
    let reads = ReadCounter()
    private(set) var handler: HTTP1ConnectionHandler!
    private let started = Started()
    private var answered: Set<Int> = []

    /// `served`: whether the connection's service is in the snapshot (the head checks of an
    /// `Expect: 100-continue` refuse it otherwise). `answeredAtOnceAfter`: requests started after
    /// that many are answered 204 within the call that starts them, as a refusal is.
    /// `defersFlushes`: answers are flushed when the loop runs its tasks, as on the gateway's sockets.
    init(settings: ProcessingSettings = ProcessingSettings(), served: Bool = true, answeredAtOnceAfter: Int = .max, defersFlushes: Bool = false) throws {
        processor = try EmbeddedProcessor.make(on: channel, settings: settings, served: served)
        let connection = ClientConnection(serviceName: "orders", caller: .direct, negotiatedProtocol: "http/1.1", peerIP: "127.0.0.1")
        // Active, as an accepted connection is (an embedded channel connects nowhere).
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let output = ConnectionOutput(channel: channel, settings: settings, metrics: processor.metrics, flushes: defersFlushes ? FlushBatch(eventLoop: channel.eventLoop) : nil)
        try output.install()
        let started = self.started
        let handler = HTTP1ConnectionHandler(processor: processor, connection: connection, output: output, limit: 1024) { request, _, _, completion in
            if started.requests.count >= answeredAtOnceAfter {
                completion(RequestProcessor.Processed(testResponse: LambdaHTTPResponse(status: 204), heldBytes: 0))
                return
            }
            started.requests.append((request, completion))
        }
        try channel.pipeline.syncOperations.addHandlers([reads, handler])
        self.handler = handler
    }

    /// The targets of the requests started so far.
    var targets: [String] { started.requests.map(\.request.target) }

    /// Bytes from the client, as one socket read.
    func send(_ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    /// Answers the `index`th request started, then runs the loop's tasks unless `runningTheLoop` is false.
    func answer(_ index: Int, status: Int = 200, body: String = "", runningTheLoop: Bool = true) {
        let response = LambdaHTTPResponse(status: status, body: ByteBuffer(string: body))
        answered.insert(index)
        started.requests[index].completion(RequestProcessor.Processed(testResponse: response, heldBytes: 0))
        if runningTheLoop { channel.embeddedEventLoop.run() }
    }

    /// What the gateway wrote since the last call.
    func written() throws -> String {
        var text = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) { text += buffer.readString(length: buffer.readableBytes) ?? "" }
        return text
    }

    /// Answers what is still unanswered and closes the channel.
    func finish() {
        for (index, started) in started.requests.enumerated() where !answered.contains(index) {
            started.completion(RequestProcessor.Processed(testResponse: LambdaHTTPResponse(status: 200), heldBytes: 0))
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    func closedByHeadTimeout() -> Double? {
        PrometheusText(processor.metrics.exposition(snapshot: .empty, inFlight: 0)).value("lambda_gateway_connections_closed_total", ["reason": "request_headers_timeout"])
    }
}

/// A processor for a handler on an `EmbeddedChannel`, whose test answers requests itself: the
/// snapshot serves `orders` (unless `served` is false), and the Lambda client is never called.
enum EmbeddedProcessor {
    static func make(on channel: EmbeddedChannel, settings: ProcessingSettings, served: Bool = true) throws -> RequestProcessor {
        var snapshot = GatewaySnapshot.empty
        if served {
            let orders = ServedService(
                name: "orders",
                snis: [],
                lambda: LambdaSettings(
                    function: try FunctionARN(parsing: "arn:aws:lambda:us-east-1:123456789012:function:orders"), payloadFormat: .envoy, passthrough: false, invocationType: .requestResponse),
                protocolName: "http",
                requestTimeout: nil,
                intentions: [],
                leaf: ServiceLeaf(certificatePEM: "", privateKeyPEM: "", serviceURI: "", serial: "1", validAfter: .distantPast, validBefore: .distantFuture, modifyIndex: 1)
            )
            snapshot.services[orders.key] = orders
        }
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        // Never called: the test answers requests in place of the Lambda call.
        let invoker = try LambdaInvokeClient(
            configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(customEndpoint: "http://127.0.0.1:9")),
            credentials: StaticCredentialSource(Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret")),
            eventLoopGroup: channel.embeddedEventLoop,
            logger: logger
        )
        return RequestProcessor(store: SnapshotStore(snapshot), invoker: invoker, settings: settings, logger: logger)
    }
}

@Suite("HTTP/1.x connection handler on an embedded channel")
struct HTTP1ConnectionHandlerTests {
    /// An answer is counted once the socket holds all of it (no write promise: the channel's
    /// writability, `ConnectionOutput.confirmsAnswersByDrain`). One still waiting when the client
    /// goes away is counted as the connection ends, as a failed write's was, not a loop round
    /// later with the close future; its bytes go back.
    @Test func anAnswerWaitingForTheSocketIsCountedWhenTheConnectionEnds() throws {
        let connection = try EmbeddedHTTP1Connection()
        let counted = {
            PrometheusText(connection.processor.metrics.exposition(snapshot: .empty, inFlight: 0))
                .value("lambda_gateway_requests_total", ["service": "orders", "status": "200", "outcome": "invoked"]) ?? 0
        }
        try connection.send("GET /a HTTP/1.1\r\nHost: orders\r\n\r\n")
        connection.answer(0, body: "sent")
        #expect(counted() == 1, "the socket took it at once")
        try connection.send("GET /b HTTP/1.1\r\nHost: orders\r\n\r\n")
        connection.channel.isWritable = false
        connection.answer(1, body: "waiting", runningTheLoop: false)
        #expect(try connection.written().hasSuffix("waiting"))
        #expect(counted() == 1, "not while its bytes wait")
        connection.channel.pipeline.fireChannelInactive()
        #expect(counted() == 2)
        connection.finish()
    }

    static func get(_ path: String, _ extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: orders\r\n\(extra)\r\n"
    }

    /// Requests pipelined behind a slow one and answered at once when their turn comes (refusals,
    /// early failures) are taken up by one loop: a burst of them must not nest a call per request
    /// (20,000 nested answers would overflow a thread's stack and take the gateway down).
    @Test func aBurstOfRequestsAnsweredAtOnceBehindASlowOneIsALoopNotARecursion() throws {
        let connection = try EmbeddedHTTP1Connection(answeredAtOnceAfter: 1)
        defer { connection.finish() }
        let burst = 20_000
        try connection.send(Self.get("/slow") + String(repeating: Self.get("/quick"), count: burst))
        #expect(connection.targets == ["/slow"])
        connection.answer(0)
        let written = try connection.written()
        #expect(written.components(separatedBy: "HTTP/1.1 200 OK\r\n").count - 1 == 1)
        #expect(written.components(separatedBy: "HTTP/1.1 204 No Content\r\n").count - 1 == burst)
        #expect(connection.channel.isActive)
    }

    /// Every read ends inside the next head: what is kept between reads is that head's start, in
    /// storage of its own size, not the storage of everything read before it (which grew by a
    /// request's size per read, for the connection's life).
    @Test func theStartOfAHeadKeptBetweenReadsHoldsNothingElse() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send("G")
        for index in 0..<300 {
            try connection.send("ET /\(index) HTTP/1.1\r\nHost: orders\r\nx-pad: \(String(repeating: "p", count: 200))\r\n\r\nG")
            connection.answer(index)
            #expect(connection.handler.unparsedCapacity < 64, "after \(index + 1) requests")
        }
        #expect(connection.targets.count == 300)
    }

    /// After a request that cannot be parsed the 400 may wait (here, for the end of the round);
    /// bytes the client still sends close the connection at once, rather than pile up.
    @Test func bytesAfterARequestThatCannotBeParsedCloseTheConnectionAtOnce() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        // A socket that takes nothing: the 400's write never completes, as for a client that
        // does not read.
        try connection.channel.pipeline.syncOperations.addHandler(WriteHolder(), position: .first)
        try connection.send("X\r\n\r\n")
        #expect(connection.channel.isActive, "the 400 is not written yet")
        try connection.send(String(repeating: "junk", count: 1000))
        #expect(!connection.channel.isActive)
        #expect(connection.handler.unparsedCapacity == 0)
    }

    @Test func aKeptAliveConnectionAnswersOneRequestAfterAnother() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send(Self.get("/a"))
        #expect(connection.targets == ["/a"])
        connection.answer(0, body: "first")
        #expect(try connection.written() == "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
        try connection.send(Self.get("/b"))
        connection.answer(1, body: "second")
        #expect(try connection.written() == "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond")
        #expect(connection.channel.isActive)
    }

    @Test func onTheGatewaysSocketsAnAnswerIsFlushedWhenTheLoopRunsItsTasks() throws {
        let connection = try EmbeddedHTTP1Connection(defersFlushes: true)
        defer { connection.finish() }
        try connection.send(Self.get("/a", "Connection: close\r\n"))
        connection.answer(0, body: "a", runningTheLoop: false)
        #expect(try connection.written() == "", "written, not yet flushed")
        #expect(connection.channel.isActive)
        connection.channel.embeddedEventLoop.run()
        #expect(try connection.written() == "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\na")
        #expect(!connection.channel.isActive, "closed once the answer was flushed")
    }

    @Test func anAnswerWaitingForTheEndOfTheRoundGoesOutBeforeAnErrorClosesTheConnection() throws {
        let connection = try EmbeddedHTTP1Connection(defersFlushes: true)
        defer { connection.finish() }
        try connection.send(Self.get("/a"))
        connection.answer(0, body: "a", runningTheLoop: false)
        // In the same round, before the loop flushes: the socket fails (as when a client streams
        // bytes behind a CONNECT past the decoder's buffer).
        connection.channel.pipeline.fireErrorCaught(ChannelError.ioOnClosedChannel)
        #expect(!connection.channel.isActive)
        #expect(try connection.written() == "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na")
    }

    @Test func pipelinedRequestsAreAnsweredInOrderWithReadingHeldWhileOneWaits() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send(Self.get("/a") + Self.get("/b") + Self.get("/c"))
        #expect(connection.targets == ["/a"], "the others wait behind the first")
        connection.channel.read()
        #expect(connection.reads.count == 0, "held: requests wait")
        connection.answer(0, body: "a")
        #expect(connection.targets == ["/a", "/b"])
        #expect(connection.reads.count == 0, "/c still waits")
        connection.answer(1, body: "b")
        #expect(connection.targets == ["/a", "/b", "/c"])
        #expect(connection.reads.count == 1, "the held read goes on once nothing waits")
        connection.answer(2, body: "c")
        let answers = try connection.written().components(separatedBy: "HTTP/1.1 200 OK\r\n").dropFirst()
        #expect(answers.map { $0.suffix(1) } == ["a", "b", "c"])
        connection.channel.read()
        #expect(connection.reads.count == 2)
    }

    @Test func connectionCloseEndsTheConnectionAfterTheAnswer() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send(Self.get("/a", "Connection: close\r\n"))
        #expect(connection.channel.isActive)
        connection.answer(0, body: "a")
        #expect(try connection.written() == "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\na")
        #expect(!connection.channel.isActive)
    }

    @Test func aHEADRequestIsAnsweredWithoutABody() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send("HEAD /a HTTP/1.1\r\nHost: orders\r\n\r\n")
        connection.answer(0, body: "abc")
        #expect(try connection.written() == "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n")
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nHost: orders\r\nx-big: \(String(repeating: "a", count: 61 * 1024))\r\n\r\n", 431),
        ("GET / HTTP/1.1\r\nHost: orders\r\nContent-Length: many\r\n\r\n", 400),
        ("BAD METHOD / HTTP/1.1\r\n\r\n", 400),
    ])
    func aRequestThatCannotBeParsedGetsABareStatusAndTheConnectionCloses(_ request: String, status: Int) throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send(request)
        let reason = status == 431 ? "Request Header Fields Too Large" : "Bad Request"
        #expect(try connection.written() == "HTTP/1.1 \(status) \(reason)\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        #expect(!connection.channel.isActive)
        #expect(connection.targets.isEmpty)
    }

    @Test func aGoAheadIsWrittenOnlyForAHeadThatPassesItsChecks() throws {
        let expecting = "POST /u HTTP/1.1\r\nHost: orders\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        let served = try EmbeddedHTTP1Connection()
        defer { served.finish() }
        try served.send(expecting)
        #expect(try served.written() == "HTTP/1.1 100 Continue\r\n\r\n")
        try served.send("hi")
        #expect(served.targets == ["/u"])

        let gone = try EmbeddedHTTP1Connection(served: false)
        defer { gone.finish() }
        try gone.send(expecting)
        let refused = try gone.written()
        #expect(refused.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n") && refused.contains("connection: close") && !refused.contains("100 Continue"), "\(refused)")
        #expect(!gone.channel.isActive)
    }

    @Test func drainingClosesAnIdleConnectionAtOnce() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!connection.channel.isActive)
        #expect(try connection.written() == "")
    }

    @Test func drainingLetsTheRequestInFlightFinishAndMarksItsAnswerAsTheLast() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send(Self.get("/a"))
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(connection.channel.isActive)
        connection.answer(0, body: "a")
        #expect(try connection.written() == "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\na")
        #expect(!connection.channel.isActive)
    }

    @Test func theIdleTimeoutClosesOnlyBetweenRequests() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send(Self.get("/a"))
        connection.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
        #expect(connection.channel.isActive, "a request waits for its answer")
        connection.answer(0)
        connection.channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
        #expect(!connection.channel.isActive)
    }

    @Test func aClientThatGoesAwayLeavesItsPipelinedRequestsUnstarted() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send(Self.get("/a") + Self.get("/b"))
        connection.channel.close(promise: nil)
        connection.answer(0, body: "a")
        #expect(connection.targets == ["/a"])
        #expect(try connection.written() == "")
    }

    @Test func aRequestWhoseClientWentAwayWhileTheFunctionRanIsStillCounted() throws {
        let connection = try EmbeddedHTTP1Connection()
        defer { connection.finish() }
        try connection.send(Self.get("/a"))
        connection.channel.close(promise: nil)
        connection.answer(0, status: 200, body: "late")
        let samples = PrometheusText(connection.processor.metrics.exposition(snapshot: .empty, inFlight: 0))
        #expect(samples.value("lambda_gateway_requests_total", ["service": "orders", "status": "200", "outcome": "invoked"]) == 1)
        #expect(samples.value("lambda_gateway_request_duration_seconds_count", ["service": "orders"]) == 1)
        // The answers the machine gives itself are counted once they are written, as before.
        let refused = try EmbeddedHTTP1Connection()
        defer { refused.finish() }
        try refused.send("CONNECT orders:443 HTTP/1.1\r\nHost: orders\r\n\r\n")
        #expect(
            PrometheusText(refused.processor.metrics.exposition(snapshot: .empty, inFlight: 0)).value("lambda_gateway_requests_total", ["service": "orders", "status": "405", "outcome": "rejected"])
                == 1)
    }

    @Test func aPartialHeadIsAnswered408AfterTheHeadTimeoutOfTheConnection() throws {
        var settings = ProcessingSettings()
        settings.requestHeadersTimeout = .seconds(1)
        let connection = try EmbeddedHTTP1Connection(settings: settings)
        defer { connection.finish() }
        connection.channel.embeddedEventLoop.advanceTime(by: .milliseconds(500))
        try connection.send("GET /a HTTP/1.1\r\nHo")
        connection.channel.embeddedEventLoop.advanceTime(by: .milliseconds(499))
        #expect(connection.channel.isActive)
        connection.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try connection.written() == "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        #expect(!connection.channel.isActive)
        #expect(connection.closedByHeadTimeout() == 1)
        // The head begun is a request: on /metrics (and in the access log) as Envoy logs it.
        let requests = { (connection: EmbeddedHTTP1Connection) in
            PrometheusText(connection.processor.metrics.exposition(snapshot: .empty, inFlight: 0)).value(
                "lambda_gateway_requests_total", ["service": "orders", "status": "408", "outcome": "rejected"]
            )
        }
        #expect(requests(connection) == 1)
        // A connection that sent nothing gets its 408 too, and is no request.
        let silent = try EmbeddedHTTP1Connection(settings: settings)
        defer { silent.finish() }
        silent.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(try silent.written().hasPrefix("HTTP/1.1 408 "))
        #expect(silent.closedByHeadTimeout() == 1)
        #expect(requests(silent) == nil)
    }

    @Test func aPartialHeadBehindARequestInFlightClosesTheConnectionAfterItsAnswer() throws {
        var settings = ProcessingSettings()
        settings.requestHeadersTimeout = .seconds(1)
        let connection = try EmbeddedHTTP1Connection(settings: settings)
        defer { connection.finish() }
        try connection.send(Self.get("/a"))
        try connection.send("GET /b HTTP/1.1\r\nHo")
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(connection.channel.isActive, "the request in flight is answered first")
        connection.answer(0, body: "a")
        #expect(try connection.written() == "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\na")
        #expect(!connection.channel.isActive)
        #expect(connection.closedByHeadTimeout() == 1)
    }
}

extension RequestProcessor.Processed {
    /// A function's answer, as the processor would hand it over.
    init(testResponse: LambdaHTTPResponse, heldBytes: Int) {
        self.init(answer: RequestProcessor.Answer(response: testResponse, outcome: .invoked, details: ResponseCodeDetails.viaUpstream), heldBytes: heldBytes)
    }
}

@Suite("Request processing on the connection's event loop")
struct RequestProcessingOnTheLoopTests {
    @Test func aRequestRefusedAtAdmissionIsAnsweredBeforeProcessReturnsWithNoTask() throws {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let processor = try EmbeddedProcessor.make(on: channel, settings: ProcessingSettings(), served: false)
        let connection = ClientConnection(serviceName: "orders", caller: .direct, negotiatedProtocol: "http/1.1", peerIP: "127.0.0.1")
        let request = GatewayRequest(method: "GET", target: "/a", headers: [HTTPField("host", "orders")], body: ByteBuffer(), protocolName: "HTTP/1.1")
        let status = ManagedAtomic<Int>(0)
        // A task would complete it later, from another thread.
        processor.process(request, connection: connection, budget: nil, answeringOn: channel.eventLoop) { processed in status.store(processed.response.status, ordering: .relaxed) }
        #expect(status.load(ordering: .relaxed) == 503)
        #expect(processor.inFlightCount == 0, "the request was counted out as it was answered")
    }
}

/// Holds every write: their promises never complete, as with a socket that takes nothing.
final class WriteHolder: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer
    var held: [EventLoopPromise<Void>?] = []
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        held.append(promise)
    }
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        for promise in held { promise?.fail(ChannelError.ioOnClosedChannel) }
        held = []
        context.close(mode: mode, promise: promise)
    }
}

import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import Synchronization
import TestSupport
import Testing

/// A mesh mTLS connection from a test, as a sidecar would open it, that records what arrives.
final class RecordingConnection: Sendable {
    let channel: any Channel
    private let recorder: ByteRecorder

    /// `records: false` leaves the pipeline after TLS to the caller (an HTTP/2 client, say).
    static func open(_ gateway: GatewayFixture, service: String, alpn: [String], records: Bool = true, port: Int? = nil) async throws -> RecordingConnection {
        try await open(tls: gateway.tls, port: port ?? gateway.port, service: service, alpn: alpn, records: records)
    }

    /// A connection to the gateway on `port`, as `web`, for `service`'s SNI.
    static func open(tls: TLSFixture, port: Int, service: String, alpn: [String], records: Bool = true) async throws -> RecordingConnection {
        let gateway = (tls: tls, port: port)
        let leaf = try gateway.tls.clientLeaf("web")
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.applicationProtocols = alpn
        configuration.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(leaf.certificatePEM.utf8), format: .pem))]
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(leaf.keyPEM.utf8), format: .pem))
        let context = try NIOSSLContext(configuration: configuration)
        let host = gateway.tls.sni(service)
        let recorder = ByteRecorder()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: host))
                    if records { try channel.pipeline.syncOperations.addHandler(recorder) }
                }
            }
            .connect(host: "127.0.0.1", port: gateway.port)
            .get()
        return RecordingConnection(channel: channel, recorder: recorder)
    }

    private init(channel: any Channel, recorder: ByteRecorder) {
        self.channel = channel
        self.recorder = recorder
    }

    var received: String { recorder.text }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Whether the gateway closed the connection within `limit` (else the test closes it).
    func closedByGateway(within limit: Duration) async -> Bool {
        let timedOut = Mutex(false)
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(limit)) {
            timedOut.withLock { $0 = true }
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
        timer.cancel()
        return !timedOut.withLock { $0 }
    }

    /// Waits until `condition` holds for what has arrived, or `limit` passes.
    func waitForReceived(within limit: Duration = .seconds(5), _ condition: (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + limit
        while !condition(received) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        return received
    }
}

final class ByteRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let bytes = Mutex("")
    var text: String { bytes.withLock { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let chunk = buffer.readString(length: buffer.readableBytes) ?? ""
        bytes.withLock { $0 += chunk }
    }
}

/// Records GOAWAY frames on an HTTP/2 client connection, and the last stream ID they carry.
final class GoAwayRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTP2Frame
    private let lastStreamIDs = Mutex<[HTTP2StreamID]>([])
    var goAways: [HTTP2StreamID] { lastStreamIDs.withLock { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .goAway(let lastStreamID, _, _) = frame.payload {
            lastStreamIDs.withLock { $0.append(lastStreamID) }
        }
        context.fireChannelRead(data)
    }
}

/// Collects one HTTP/1-style response on an HTTP/2 stream.
final class StreamResponse: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<(status: Int, body: String)>
    private let state = Mutex<(status: Int, body: String)>((0, ""))

    init(promise: EventLoopPromise<(status: Int, body: String)>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): state.withLock { $0.status = Int(head.status.code) }
        case .body(var body): state.withLock { $0.body += body.readString(length: body.readableBytes) ?? "" }
        case .end: promise.succeed(state.withLock { $0 })
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
    }
}

@Suite("Draining: a service that leaves the configuration", .serialized, .timeLimit(.minutes(1)))
struct DrainTests {
    /// Answers `/slow` only once `released` happened (the test has seen the drain begin),
    /// anything else at once: the request in flight is answered during the drain however slow
    /// the machine is. (A fixed delay of 800 ms raced the unlink on a loaded machine.)
    static func slow(releasedBy released: EventSignal) -> TestHTTPServer.Handler {
        { request in
            let path = (try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])?["raw_path"] as? String
            if path == "/slow" { await released.wait(beyond: 0, until: .now + .seconds(20)) }
            return ScriptedResponse(json: #"{"statusCode":200,"body":"done \#(path ?? "")"}"#)
        }
    }

    func unlinkOrders(_ gateway: GatewayFixture) async throws {
        try gateway.tls.snapshots.consul.linkServices(["thumbnails"])
        try await gateway.tls.snapshots.waitFor("orders unlinked") { $0.services["orders"] == nil && $0.services["thumbnails"] != nil }
    }

    func waitForLambdaRequests(_ gateway: GatewayFixture, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while gateway.lambda.requests.count < count && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(gateway.lambda.requests.count >= count)
    }

    @Test func http1ConnectionsCloseAfterTheirInFlightRequestAndIdleOnesAtOnce() async throws {
        let released = EventSignal()
        try await GatewayFixture.with(lambdaHandler: Self.slow(releasedBy: released)) { gateway in
            let idle = try await RecordingConnection.open(gateway, service: "orders", alpn: ["http/1.1"])
            let busy = try await RecordingConnection.open(gateway, service: "orders", alpn: ["http/1.1"])
            let other = try await RecordingConnection.open(gateway, service: "thumbnails", alpn: ["http/1.1"])
            try await idle.send("POST /fast HTTP/1.1\r\nHost: orders\r\nContent-Length: 0\r\n\r\n")
            #expect(try await idle.waitForReceived { $0.contains("done /fast") }.hasPrefix("HTTP/1.1 200"))
            try await busy.send("POST /slow HTTP/1.1\r\nHost: orders\r\nContent-Length: 0\r\n\r\n")
            try await waitForLambdaRequests(gateway, 2)

            try await unlinkOrders(gateway)
            // The idle connection goes at once; the busy one gets its answer, marked as the last.
            #expect(await idle.closedByGateway(within: .seconds(2)))
            released.record()
            #expect(await busy.closedByGateway(within: .seconds(5)))
            let answer = busy.received.lowercased()
            #expect(answer.hasPrefix("http/1.1 200") && answer.contains("done /slow") && answer.contains("connection: close"), "\(busy.received)")
            // A connection to a service still served is not touched.
            #expect(await other.closedByGateway(within: .milliseconds(300)) == false)
            // The gateway notices the test's own close a moment later.
            let deadline = ContinuousClock.now + .seconds(2)
            while gateway.processor.connections.count > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(gateway.processor.connections.count == 0)
        }
    }

    @Test func http2ConnectionsGetGoAwayAndFinishTheirStreams() async throws {
        let released = EventSignal()
        try await GatewayFixture.with(lambdaHandler: Self.slow(releasedBy: released)) { gateway in
            try gateway.tls.snapshots.consul.setConfigEntry(ordersDefaults.replacingOccurrences(of: #""Protocol":"http""#, with: #""Protocol":"http2""#))
            try await gateway.tls.snapshots.waitFor("orders is http2") { $0.services["orders"]?.protocolName == "http2" }
            let connection = try await RecordingConnection.open(gateway, service: "orders", alpn: ["h2"], records: false)
            let goAways = GoAwayRecorder()
            let multiplexer = try await connection.channel.eventLoop.submit {
                let multiplexer = try connection.channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .client,
                    connectionConfiguration: .init(),
                    streamConfiguration: .init()
                ) { $0.eventLoop.makeSucceededVoidFuture() }
                try connection.channel.pipeline.syncOperations.addHandler(goAways)
                return multiplexer
            }.get()
            let promise = connection.channel.eventLoop.makePromise(of: (status: Int, body: String).self)
            let stream = try await multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .https))
                    try stream.pipeline.syncOperations.addHandler(StreamResponse(promise: promise))
                }
            }.get()
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/slow")
            head.headers.add(name: "host", value: gateway.tls.sni("orders"))
            stream.write(HTTPClientRequestPart.head(head), promise: nil)
            try await stream.writeAndFlush(HTTPClientRequestPart.end(nil))
            try await waitForLambdaRequests(gateway, 1)

            try await unlinkOrders(gateway)
            // The drain has begun (its first GOAWAY came): now the function answers.
            let drained = ContinuousClock.now + .seconds(5)
            while goAways.goAways.isEmpty && ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(10)) }
            #expect(goAways.goAways.first == .maxID, "\(goAways.goAways)")
            released.record()
            // Bounded: an answer lost to the close would otherwise leave this wait hanging.
            let lost = connection.channel.eventLoop.scheduleTask(in: .seconds(10)) { promise.fail(ChannelError.ioOnClosedChannel) }
            let response = try await promise.futureResult.get()
            lost.cancel()
            #expect(response.status == 200 && response.body == "done /slow")
            #expect(await connection.closedByGateway(within: .seconds(5)))
            // GOAWAY first for every stream (2^31-1), then, after a PING round trip, for the last one taken.
            #expect(goAways.goAways.first == .maxID, "\(goAways.goAways)")
            #expect(goAways.goAways.last == HTTP2StreamID(1), "\(goAways.goAways)")
        }
    }
}

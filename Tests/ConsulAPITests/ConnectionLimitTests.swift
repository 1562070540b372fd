import Foundation
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

/// Collects what a raw TCP connection receives.
final class Received: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let text = Mutex("")
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        text.withLock { $0 += String(buffer: buffer) }
    }
}

@Suite("The Consul API test server's per-client connection limit", .timeLimit(.minutes(1)))
struct ConnectionLimitTests {
    func connect(_ port: Int) async throws -> (Channel, Received) {
        let received = Received()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { $0.pipeline.addHandler(received) }
            .connect(host: "127.0.0.1", port: port)
            .get()
        return (channel, received)
    }

    @Test func aConnectionOverTheLimitGetsConsuls429AndIsClosed() async throws {
        var options = ConsulTestServer.Options()
        options.maxConnectionsPerClient = 3
        let consul = try await ConsulTestServer(options: options)
        defer { Task { await consul.shutdown() } }
        var open: [Channel] = []
        for _ in 0..<3 { open.append(try await connect(consul.port).0) }
        // The server sets up accepted connections on several event loops: the fourth is the one
        // over the limit only once the first three are counted.
        try await waitUntil("the server counts 3 open connections") { consul.openConnectionsPerClient == 3 }
        let (over, received) = try await connect(consul.port)
        // Bounded: a connection the server failed to refuse must fail the test, not hang it.
        let closedBy = over.eventLoop.scheduleTask(in: .seconds(30)) { over.close(promise: nil) }
        try? await over.closeFuture.get()
        closedBy.cancel()
        #expect(received.text.withLock { $0 } == TestHTTPServer.tooManyConnections)
        #expect(consul.refusedConnections == 1)
        // A connection that closes frees its place: the next one is served.
        try await open.removeFirst().close()
        try await waitUntil("the server counts the close") { consul.openConnectionsPerClient == 2 }
        let (again, answer) = try await connect(consul.port)
        try await again.writeAndFlush(ByteBuffer(string: "GET /v1/catalog/services HTTP/1.1\r\nHost: consul\r\n\r\n"))
        try await waitUntil("an answer on the freed place") { answer.text.withLock { $0.hasPrefix("HTTP/1.1 ") && $0.contains("\r\n\r\n") } }
        #expect(answer.text.withLock { $0.hasPrefix("HTTP/1.1 200 ") }, "\(answer.text.withLock { $0 })")
        #expect(again.isActive && consul.refusedConnections == 1)
        try await again.close()
        for channel in open { try await channel.close() }
    }
}

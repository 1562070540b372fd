import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import TestSupport

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
        let (over, received) = try await connect(consul.port)
        // Bounded: a connection the server failed to refuse must fail the test, not hang it.
        let closedBy = over.eventLoop.scheduleTask(in: .seconds(10)) { over.close(promise: nil) }
        try? await over.closeFuture.get()
        closedBy.cancel()
        #expect(received.text.withLock { $0 } == "HTTP/1.1 429 Too Many Requests\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n")
        #expect(consul.refusedConnections == 1)
        // A connection that closes frees its place.
        try await open.removeFirst().close()
        try await Task.sleep(for: .milliseconds(100))
        let (again, _) = try await connect(consul.port)
        try await Task.sleep(for: .milliseconds(100))
        #expect(again.isActive && consul.refusedConnections == 1)
        try await again.close()
        for channel in open { try await channel.close() }
    }
}

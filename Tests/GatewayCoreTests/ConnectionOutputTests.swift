import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayCore

@Suite("Connection output")
struct ConnectionOutputTests {
    /// A connection that wrote an answer and closed is let go at once. Its progress check is a
    /// scheduled task, which keeps what it captures (the output, the channel, its pipeline) until
    /// it fires: left to fire, it held every connection closed in the last quarter of the send
    /// timeout, tens of MB at a few hundred new connections a second.
    @Test func aClosedConnectionIsNotHeldByItsProgressCheck() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        weak var released: ConnectionOutput?
        do {
            let output = ConnectionOutput(channel: channel, settings: ProcessingSettings(), metrics: GatewayMetrics())
            try output.install()
            released = output
            let written = channel.eventLoop.makePromise(of: Void.self)
            output.writing(10, done: written.futureResult)
            written.succeed(())
        }
        #expect(released != nil, "an open connection keeps its check")
        try channel.close().wait()
        channel.embeddedEventLoop.run()
        #expect(released == nil, "the closed connection's output is gone, its check cancelled")
    }
}

@Suite("The socket's activity: bytes taken and the idle timeout")
struct SocketActivityTests {
    /// Records the idle events that reach the end of the pipeline.
    final class IdleEvents: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = NIOAny
        var count = 0
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .all? = event as? IdleStateHandler.IdleStateEvent { count += 1 }
        }
    }

    func makeChannel() throws -> (EmbeddedChannel, SocketActivity, IdleEvents) {
        let channel = EmbeddedChannel()
        let activity = SocketActivity(idleTimeout: .seconds(4))
        let events = IdleEvents()
        try channel.pipeline.syncOperations.addHandlers([activity, events])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, activity, events)
    }

    @Test func aSilentConnectionIsIdleAfterTheTimeoutAndAgainAfterEachOne() throws {
        let (channel, _, events) = try makeChannel()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(3999))
        #expect(events.count == 0, "not before the timeout")
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(events.count == 1, "between one and one and a quarter timeouts")
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(events.count == 2, "again while it stays idle")
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func readsAndWritesKeepAConnectionFromBeingIdle() throws {
        let (channel, activity, events) = try makeChannel()
        for step in 0..<12 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(1))
            if step % 2 == 0 {
                try channel.writeInbound(ByteBuffer(string: "in"))
            } else {
                try channel.writeOutbound(ByteBuffer(string: "out"))
            }
        }
        #expect(events.count == 0)
        #expect(activity.handedDown == 3 * 6, "the bytes handed to the socket are counted")
        // Then silence: idle within one and a quarter timeouts of the last write.
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(events.count == 1)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func aClosedConnectionStopsTheTimer() throws {
        let (channel, _, events) = try makeChannel()
        try channel.close().wait()
        channel.embeddedEventLoop.advanceTime(by: .seconds(20))
        #expect(events.count == 0)
    }
}

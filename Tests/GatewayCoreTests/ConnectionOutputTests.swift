import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
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

    /// What each answer's `then` was told, by name.
    final class Outcomes {
        var written: [String: Bool] = [:]
        func then(_ name: String) -> (Bool) -> Void {
            { self.written[name] = $0 }
        }
    }

    /// HTTP/1.1 answers are written without a promise: each is sent once the socket holds nothing
    /// more of what was flushed with it (writability, with both water marks at one byte), and
    /// unsent when the connection ends first. Its bytes stay in the budget until then.
    @Test func answersWithoutAPromiseAreSentOnceTheSocketHoldsNothingMore() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let output = ConnectionOutput(channel: channel, settings: ProcessingSettings(), metrics: GatewayMetrics())
        try output.install()
        output.confirmsAnswersByDrain()
        let context = try channel.pipeline.syncOperations.context(handlerType: SocketActivity.self)
        let outcomes = Outcomes()

        // Bytes still wait for the socket after the flush: not sent yet.
        channel.isWritable = false
        output.writingUnconfirmed(10, then: outcomes.then("a"))
        output.flushMarking(context)
        #expect(outcomes.written.isEmpty)
        #expect(output.budget.held == 10)
        // Written, not flushed, when the socket drains: the drain does not cover it.
        output.writingUnconfirmed(20, then: outcomes.then("b"))
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(outcomes.written == ["a": true])
        #expect(output.budget.held == 20)
        // Its flush finds the socket empty (no drain event comes): sent at once.
        output.flushMarking(context)
        #expect(outcomes.written == ["a": true, "b": true])
        #expect(output.budget.held == 0)

        // Still waiting when a later write (a streamed answer's piece, with its promise) reaches
        // the socket: the earlier answer did too, NIO keeping the order of writes.
        channel.isWritable = false
        output.writingUnconfirmed(7, then: outcomes.then("d"))
        output.flushMarking(context)
        let piece = channel.eventLoop.makePromise(of: Void.self)
        output.writing(3, done: piece.futureResult)
        #expect(outcomes.written["d"] == nil)
        piece.succeed(())
        #expect(outcomes.written["d"] == true)
        #expect(output.budget.held == 0)

        // Flushed with bytes waiting, then the connection ends: unsent, its bytes given back.
        channel.isWritable = false
        output.writingUnconfirmed(5, then: outcomes.then("c"))
        output.flushMarking(context)
        try channel.close().wait()
        channel.embeddedEventLoop.run()
        #expect(outcomes.written["c"] == false)
        #expect(output.budget.held == 0)
    }

    /// On a real socket, with small kernel buffers and a client that reads nothing: an answer of
    /// which some bytes still wait is not sent, though far fewer wait than NIO's usual high water
    /// mark (64 KiB, under which the channel would still say it is writable); once the client
    /// reads, the drain sends it.
    @Test func anAnswerIsNotSentWhileAnyOfItsBytesWaitOnARealSocket() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let accepted = group.next().makePromise(of: (ConnectionOutput, any Channel).self)
        let server = try await ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.so_sndbuf), value: 4096)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let output = ConnectionOutput(channel: channel, settings: ProcessingSettings(), metrics: GatewayMetrics())
                    try output.install()
                    output.confirmsAnswersByDrain()
                    accepted.succeed((output, channel))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let blocker = ReadBlocker()
        let client = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(blocker) }
            }
            .connect(to: server.localAddress!).get()
        let (output, channel) = try await accepted.futureResult.get()
        let sent = Mutex<Bool?>(nil)
        let answer = 48 * 1024
        try await channel.eventLoop.submit {
            let context = try channel.pipeline.syncOperations.context(handlerType: SocketActivity.self)
            channel.write(ByteBuffer(repeating: UInt8(ascii: "a"), count: answer), promise: nil)
            output.writingUnconfirmed(answer) { written in sent.withLock { $0 = written } }
            output.flushMarking(context)
        }.get()
        try await Task.sleep(for: .milliseconds(200))
        let waiting = try await channel.eventLoop.submit { try channel.syncOptions!.getOption(.bufferedWritableBytes) }.get()
        #expect(waiting > 0 && waiting < 64 * 1024, "some bytes wait, fewer than NIO's usual high water mark: \(waiting)")
        #expect(sent.withLock { $0 } == nil, "not sent while \(waiting) bytes wait")
        #expect(output.budget.held == answer)

        try await client.pipeline.removeHandler(blocker)
        client.read()
        let deadline = ContinuousClock.now + .seconds(5)
        while sent.withLock({ $0 }) == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(sent.withLock { $0 } == true)
        #expect(output.budget.held == 0)
        try await client.close()
        try await server.close()
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

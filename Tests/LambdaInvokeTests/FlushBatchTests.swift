import NIOCore
import NIOEmbedded
import Testing

@testable import LambdaInvoke

@Suite("Flushes at the end of the event loop's round")
struct FlushBatchTests {
    final class FlushCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var count = 0
        func flush(context: ChannelHandlerContext) {
            count += 1
            context.flush()
        }
    }

    /// Two channels on one loop, as a gateway's client and Lambda connections are, and the loop's batch.
    func channels() throws -> (EmbeddedEventLoop, FlushBatch, EmbeddedChannel, EmbeddedChannel) {
        let loop = EmbeddedEventLoop()
        let first = EmbeddedChannel(loop: loop)
        let second = EmbeddedChannel(loop: loop)
        try first.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try second.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        return (loop, FlushBatches().batch(for: loop), first, second)
    }

    @Test func theWritesOfOneRoundAreFlushedTogetherWhenTheLoopRunsItsTasks() throws {
        let (loop, batch, first, second) = try channels()
        first.write(ByteBuffer(string: "a"), promise: nil)
        batch.flush(first)
        second.write(ByteBuffer(string: "b"), promise: nil)
        batch.flush(second)
        #expect(try first.readOutbound(as: ByteBuffer.self) == nil)
        #expect(try second.readOutbound(as: ByteBuffer.self) == nil)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "a"))
        #expect(try second.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "b"))
        _ = try first.finish()
        _ = try second.finish()
    }

    @Test func aFlushAskedForWhileARoundIsFlushedIsNotLost() throws {
        let (loop, batch, first, second) = try channels()
        // The first write's promise succeeds as it is flushed, and writes to the second channel.
        let written = loop.makePromise(of: Void.self)
        written.futureResult.whenSuccess {
            second.write(ByteBuffer(string: "b"), promise: nil)
            batch.flush(second)
        }
        first.write(ByteBuffer(string: "a"), promise: written)
        batch.flush(first)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "a"))
        #expect(try second.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "b"))
        // And the round after works as the first did.
        first.write(ByteBuffer(string: "c"), promise: nil)
        batch.flush(first)
        #expect(try first.readOutbound(as: ByteBuffer.self) == nil)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "c"))
        _ = try first.finish()
        _ = try second.finish()
    }

    @Test func anotherLoopsChannelIsFlushedAtOnce() throws {
        let (loop, batch, first, second) = try channels()
        let elsewhere = EmbeddedChannel()
        elsewhere.write(ByteBuffer(string: "x"), promise: nil)
        batch.flush(elsewhere)
        #expect(try elsewhere.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "x"))
        loop.run()
        _ = try elsewhere.finish()
        _ = try first.finish()
        _ = try second.finish()
    }

    @Test func aChannelFlushedTwiceInARoundIsFlushedOnce() throws {
        let (loop, batch, first, second) = try channels()
        let flushes = FlushCounter()
        try first.pipeline.syncOperations.addHandler(flushes)
        first.write(ByteBuffer(string: "a"), promise: nil)
        batch.flush(first)
        first.write(ByteBuffer(string: "b"), promise: nil)
        batch.flush(first)
        loop.run()
        #expect(flushes.count == 1)
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "a"))
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "b"))
        _ = try first.finish()
        _ = try second.finish()
    }

    @Test func eachLoopHasOneBatch() {
        let batches = FlushBatches()
        let one = EmbeddedEventLoop()
        let other = EmbeddedEventLoop()
        #expect(batches.batch(for: one) === batches.batch(for: one))
        #expect(batches.batch(for: one) !== batches.batch(for: other))
        #expect(batches.batch(for: other).eventLoop === other)
    }
}

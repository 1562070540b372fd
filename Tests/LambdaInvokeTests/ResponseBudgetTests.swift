import NIOCore
import NIOEmbedded
import NIOHTTP1
import Synchronization
import Testing

@testable import LambdaInvoke

@Suite("A client connection's answer budget")
struct ResponseBudgetTests {
    /// Records what each waiter was told, in order.
    final class Calls: Sendable {
        let log = Mutex<[String]>([])
        func waiter(_ name: String) -> ResponseBudget.Waiter { { granted in self.log.withLock { $0.append("\(name):\(granted)") } } }
        var all: [String] { log.withLock { $0 } }
    }

    @Test func answersWaitUntilTheyFitAndGoInOrder() {
        let budget = ResponseBudget(limit: 100)
        let calls = Calls()
        let a = budget.reserve(60, orWait: calls.waiter("a"))
        let b = budget.reserve(60, orWait: calls.waiter("b"))
        // A smaller one behind a waiting one waits too (in order).
        let c = budget.reserve(10, orWait: calls.waiter("c"))
        #expect(a && !b && !c)
        // Under the limit, but answers wait for room: new requests should not start.
        #expect(budget.isSpent)
        #expect(budget.held == 60 && calls.all.isEmpty)
        budget.release(60)
        #expect(calls.all == ["b:true", "c:true"])
        #expect(budget.held == 70 && budget.peak == 70)
    }

    @Test func oneAnswerLargerThanTheLimitPassesWhenNothingIsHeld() {
        let budget = ResponseBudget(limit: 100)
        let taken = budget.reserve(500, orWait: { _ in })
        #expect(taken)
        #expect(budget.isSpent)
        let calls = Calls()
        let next = budget.reserve(1, orWait: calls.waiter("next"))
        #expect(!next)
        budget.release(500)
        #expect(calls.all == ["next:true"])
    }

    @Test func answersWrittenToTheClientSpendTheBudgetForNewRequests() {
        let budget = ResponseBudget(limit: 100)
        let calls = Calls()
        budget.take(150)  // already in memory: taken whatever the limit
        budget.whenAvailable(calls.waiter("start"))
        #expect(calls.all.isEmpty)
        budget.release(100)
        #expect(calls.all == ["start:true"])
    }

    @Test func waitingForRoomThatIsAlreadyThereGoesOnAtOnce() {
        let budget = ResponseBudget(limit: 100)
        let calls = Calls()
        budget.take(50)
        budget.whenAvailable(calls.waiter("now"))
        #expect(calls.all == ["now:true"])
    }

    @Test func closingTellsEveryWaiterAndRefusesLaterOnes() {
        let budget = ResponseBudget(limit: 10)
        let calls = Calls()
        budget.take(10)
        let a = budget.reserve(5, orWait: calls.waiter("a"))
        #expect(!a)
        budget.whenAvailable(calls.waiter("b"))
        budget.close()
        #expect(calls.all == ["a:false", "b:false"])
        let late = budget.reserve(1, orWait: calls.waiter("late"))
        #expect(!late)
        #expect(calls.all == ["a:false", "b:false", "late:false"])
    }
}

@Suite("The upstream exchange handler")
struct UpstreamExchangeHandlerTests {
    final class CallCount: Sendable {
        let count = Mutex(0)
    }

    /// `deadline`: by default 30 s of the real clock, which an `EmbeddedEventLoop`'s own clock
    /// (from zero) never reaches.
    func exchange(on channel: EmbeddedChannel, budget: ResponseBudget? = nil, deadline: NIODeadline = .now() + .seconds(30)) -> (UpstreamExchange, EventLoopFuture<UpstreamResponse>) {
        let promise = channel.eventLoop.makePromise(of: UpstreamResponse.self)
        let request = UpstreamRequestEncoder.encode(method: .POST, target: "/", fields: [("Content-Length", "2")], body: ByteBuffer(string: "{}"))
        // Called once: a second call would release the pooled connection twice (a promise would
        // have swallowed it, so it is counted here).
        let calls = CallCount()
        let completion: @Sendable (Result<UpstreamResponse, UpstreamFailure>) -> Void = { result in
            let call = calls.count.withLock {
                $0 += 1
                return $0
            }
            guard call == 1 else {
                Issue.record("the exchange was completed \(call) times, the last with \(result)")
                return
            }
            promise.completeWith(result.mapError { $0 })
        }
        return (UpstreamExchange(request: request, completion: completion, deadline: deadline, maximumResponseBytes: 1 << 20, budget: budget), promise.futureResult)
    }

    /// The failure of an exchange on an `EmbeddedChannel`, where futures complete synchronously.
    func failure(_ future: EventLoopFuture<UpstreamResponse>) -> UpstreamFailure? {
        do {
            _ = try future.wait()
            return nil
        } catch {
            return error as? UpstreamFailure
        }
    }

    func makeChannel(defersFlush: Bool = false) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let flushes = defersFlush ? FlushBatch(eventLoop: channel.eventLoop) : nil
        try channel.pipeline.syncOperations.addHandler(UpstreamExchangeHandler(readiness: channel.eventLoop.makePromise(), waitsForTLS: false, flushes: flushes))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func aConnectionLostBeforeTheRequestWasWrittenSaysSo() throws {
        let channel = try makeChannel()
        channel.pipeline.fireChannelInactive()
        let (exchange, future) = exchange(on: channel)
        channel.writeAndFlush(exchange, promise: nil)
        guard case .closedBeforeResponse(_, requestWritten: false)? = failure(future) else {
            Issue.record("expected closedBeforeResponse before the write, got \(String(describing: failure(future)))")
            return
        }
    }

    /// The pool hands an exchange to the handler directly (`start`), not through the pipeline:
    /// there is no write promise to tell it the channel is gone, so the handler does.
    @Test func anExchangeHandedToTheHandlerIsWrittenOrEndsAtOnceWhenTheChannelIsGone() throws {
        let channel = EmbeddedChannel()
        let handler = UpstreamExchangeHandler(readiness: channel.eventLoop.makePromise(), waitsForTLS: false)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let (first, answer) = exchange(on: channel)
        handler.start(first)
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil, "written and flushed")
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
        #expect(try answer.wait().status == 200)
        // The connection closes and its handlers leave the pipeline; an exchange that comes after
        // (leased just before, from another loop) ends as unwritten, so a reused connection's is retried.
        _ = try channel.finish(acceptAlreadyClosed: true)
        let (late, future) = exchange(on: channel)
        handler.start(late)
        guard case .closedBeforeResponse(_, requestWritten: false)? = failure(future) else {
            Issue.record("expected closedBeforeResponse, not written, got \(String(describing: failure(future)))")
            return
        }
    }

    /// An exchange with `deadline` started on `handler` and answered 200 at once.
    func answeredExchange(on channel: EmbeddedChannel, handler: UpstreamExchangeHandler, deadline: NIODeadline) throws {
        let (exchange, answer) = exchange(on: channel, deadline: deadline)
        handler.start(exchange)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
        #expect(try answer.wait().status == 200)
    }

    /// Moves `channel`'s clock on by `time`, after which `answer` has ended with `timedOut`.
    func expectTimedOut(_ answer: EventLoopFuture<UpstreamResponse>, after time: TimeAmount, on channel: EmbeddedChannel, sourceLocation: SourceLocation = #_sourceLocation) {
        channel.embeddedEventLoop.advanceTime(by: time)
        guard case .timedOut? = failure(answer) else {
            Issue.record("expected timedOut, got \(String(describing: failure(answer)))", sourceLocation: sourceLocation)
            return
        }
    }

    /// An upstream connection with its handler, on an `EmbeddedEventLoop` whose clock the test moves.
    func timedChannel() throws -> (EmbeddedChannel, UpstreamExchangeHandler, ChannelHandlerContext) {
        let channel = EmbeddedChannel()
        let handler = UpstreamExchangeHandler(readiness: channel.eventLoop.makePromise(), waitsForTLS: false)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, handler, try channel.pipeline.syncOperations.context(handler: handler))
    }

    /// One deadline timer serves a connection's exchanges in turn: armed at the first exchange's
    /// deadline, it is left running when that exchange ends. Firing then, it finds the next
    /// exchange within its own, later deadline and moves on to it, and ends it only once that
    /// deadline has passed. A replaced timer firing late ends nothing.
    @Test func theDeadlineTimerEndsAnExchangeOnlyAtItsOwnDeadline() throws {
        let (channel, handler, context) = try timedChannel()
        let loop = channel.embeddedEventLoop
        let (first, firstAnswer) = exchange(on: channel, deadline: loop.now + .seconds(1))
        handler.start(first)
        let firstTimer = try #require(handler.deadlineTimerGeneration)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
        #expect(try firstAnswer.wait().status == 200)
        #expect(handler.deadlineTimerGeneration == firstTimer, "left running")
        let (second, secondAnswer) = exchange(on: channel, deadline: loop.now + .seconds(10))
        let ended = Mutex(false)
        secondAnswer.whenComplete { _ in ended.withLock { $0 = true } }
        handler.start(second)
        #expect(handler.deadlineTimerGeneration == firstTimer, "a later deadline does not move it")
        // The first exchange's deadline passes: the second goes on, and the timer moves to its deadline.
        loop.advanceTime(by: .seconds(2))
        #expect(!ended.withLock { $0 })
        #expect(channel.isActive)
        let secondTimer = try #require(handler.deadlineTimerGeneration)
        #expect(secondTimer != firstTimer)
        // The replaced timer, firing late: nothing.
        handler.deadlineTimerFired(generation: firstTimer, context: context)
        #expect(!ended.withLock { $0 })
        #expect(handler.deadlineTimerGeneration == secondTimer)
        // Just before the second's deadline, nothing; at it, the exchange ends and the connection closes.
        loop.advanceTime(by: .milliseconds(7_999))
        #expect(!ended.withLock { $0 })
        loop.advanceTime(by: .milliseconds(1))
        try #require(ended.withLock { $0 })
        guard case .timedOut? = failure(secondAnswer) else {
            Issue.record("expected timedOut, got \(String(describing: failure(secondAnswer)))")
            return
        }
        #expect(!channel.isActive)
        #expect(handler.deadlineTimerGeneration == nil, "stopped with the connection")
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// An exchange whose deadline comes before the running timer's (a service with a shorter
    /// timeout on the same pooled connection) moves the timer forward: it ends at its own deadline,
    /// not at the earlier exchange's later one.
    @Test func aSoonerDeadlineMovesTheTimerForward() throws {
        let (channel, handler, _) = try timedChannel()
        let loop = channel.embeddedEventLoop
        try answeredExchange(on: channel, handler: handler, deadline: loop.now + .seconds(60))
        let (second, secondAnswer) = exchange(on: channel, deadline: loop.now + .seconds(1))
        handler.start(second)
        expectTimedOut(secondAnswer, after: .seconds(1), on: channel)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// Between exchanges the timer stops when it fires, and the connection's next exchange arms it
    /// again: an idle pooled connection keeps no timer going.
    @Test func anIdleConnectionsTimerStopsAndTheNextExchangeArmsIt() throws {
        let (channel, handler, _) = try timedChannel()
        let loop = channel.embeddedEventLoop
        try answeredExchange(on: channel, handler: handler, deadline: loop.now + .seconds(1))
        loop.advanceTime(by: .seconds(2))
        #expect(handler.deadlineTimerGeneration == nil)
        #expect(channel.isActive)
        let (second, secondAnswer) = exchange(on: channel, deadline: loop.now + .seconds(1))
        handler.start(second)
        #expect(handler.deadlineTimerGeneration != nil)
        expectTimedOut(secondAnswer, after: .seconds(1), on: channel)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    /// Bytes behind a whole answer are nobody's: the answer stands, but the connection is not
    /// used again. The exchange the completion starts at once, on this connection, must not get
    /// them as its answer.
    @Test func bytesBehindAnAnswerNeverBecomeTheNextExchangesAnswer() throws {
        let channel = EmbeddedChannel()
        let handler = UpstreamExchangeHandler(readiness: channel.eventLoop.makePromise(), waitsForTLS: false)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let (second, secondAnswer) = exchange(on: channel)
        let request = UpstreamRequestEncoder.encode(method: .POST, target: "/", fields: [("Content-Length", "2")], body: ByteBuffer(string: "{}"))
        let firstAnswer = channel.eventLoop.makePromise(of: UpstreamResponse.self)
        let boundHandler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        let first = UpstreamExchange(
            request: request,
            completion: { result in
                // As the pool does: the connection is free again, and the next call takes it.
                boundHandler.value.start(second)
                firstAnswer.completeWith(result.mapError { $0 })
            }, deadline: .now() + .seconds(30), maximumResponseBytes: 1 << 20)
        handler.start(first)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!"))
        let answer = try firstAnswer.futureResult.wait()
        #expect(String(buffer: answer.body) == "hi" && !answer.keepAlive)
        guard case .closedBeforeResponse(_, requestWritten: false)? = failure(secondAnswer) else {
            Issue.record("expected closedBeforeResponse, not written, got \(String(describing: failure(secondAnswer)))")
            return
        }
        #expect(!channel.isActive)
    }

    @Test func theRequestIsFlushedByTheHandlerItselfAtOnceOrWhenTheLoopRunsItsTasks() throws {
        let now = try makeChannel()
        now.write(exchange(on: now).0, promise: nil)
        #expect(try now.readOutbound(as: ByteBuffer.self) != nil, "flushed without the caller's flush")
        let deferred = try makeChannel(defersFlush: true)
        deferred.write(exchange(on: deferred).0, promise: nil)
        #expect(try deferred.readOutbound(as: ByteBuffer.self) == nil, "written, not yet flushed")
        deferred.embeddedEventLoop.run()
        #expect(try deferred.readOutbound(as: ByteBuffer.self) != nil)
        _ = try now.finish(acceptAlreadyClosed: true)
        _ = try deferred.finish(acceptAlreadyClosed: true)
    }

    /// Stands for a socket that refuses a write: NIO closes the channel within the flush that
    /// made the write, as this handler does.
    final class RefusingSocket: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        func flush(context: ChannelHandlerContext) {
            context.close(promise: nil)
        }
    }

    /// No write promise tells the handler whether the socket took the request: a connection lost
    /// within the request's flush (the socket refused it) ends the exchange as unwritten, so that
    /// a reused connection's is sent again; one lost after that flush came back, as written. Both
    /// for a flush the handler makes and one made at the end of the loop's round.
    @Test(arguments: [false, true]) func aRequestTheSocketRefusedIsUnwritten(defersFlush: Bool) throws {
        let refused = try makeChannel(defersFlush: defersFlush)
        try refused.pipeline.syncOperations.addHandler(RefusingSocket(), position: .first)
        let (first, unwritten) = exchange(on: refused)
        refused.write(first, promise: nil)
        refused.embeddedEventLoop.run()
        guard case .closedBeforeResponse(_, requestWritten: false)? = failure(unwritten) else {
            Issue.record("expected closedBeforeResponse, not written, got \(String(describing: failure(unwritten)))")
            return
        }
        let taken = try makeChannel(defersFlush: defersFlush)
        let (second, written) = exchange(on: taken)
        taken.write(second, promise: nil)
        taken.embeddedEventLoop.run()
        #expect(try taken.readOutbound(as: ByteBuffer.self) != nil)
        taken.pipeline.fireChannelInactive()
        guard case .closedBeforeResponse(_, requestWritten: true)? = failure(written) else {
            Issue.record("expected closedBeforeResponse after the flush, got \(String(describing: failure(written)))")
            return
        }
        _ = try taken.finish(acceptAlreadyClosed: true)
    }

    /// A request the socket took only in part (bytes still wait after the flush: the channel is
    /// not writable, its water marks being at one byte) is unwritten until the rest is taken:
    /// the endpoint cannot have run an incomplete request, so a reused connection's is sent again.
    @Test func aRequestTheSocketTookInPartIsUnwrittenUntilTheRestIsTaken() throws {
        let marks = try makeChannel()
        let set = try marks.syncOptions?.getOption(.writeBufferWaterMark)
        #expect(set?.low == 1 && set?.high == 1, "writable exactly when no byte waits")
        _ = try marks.finish(acceptAlreadyClosed: true)

        let partly = try makeChannel()
        partly.isWritable = false
        let (first, unwritten) = exchange(on: partly)
        partly.write(first, promise: nil)
        #expect(try partly.readOutbound(as: ByteBuffer.self) != nil, "flushed")
        partly.pipeline.fireChannelInactive()
        guard case .closedBeforeResponse(_, requestWritten: false)? = failure(unwritten) else {
            Issue.record("expected closedBeforeResponse, not written, got \(String(describing: failure(unwritten)))")
            return
        }

        let drained = try makeChannel()
        drained.isWritable = false
        let (second, written) = exchange(on: drained)
        drained.write(second, promise: nil)
        drained.isWritable = true
        drained.pipeline.fireChannelWritabilityChanged()
        drained.pipeline.fireChannelInactive()
        guard case .closedBeforeResponse(_, requestWritten: true)? = failure(written) else {
            Issue.record("expected closedBeforeResponse, written once the socket took the rest, got \(String(describing: failure(written)))")
            return
        }
    }

    @Test func aConnectionLostAfterTheRequestWasWrittenSaysItMayHaveRun() throws {
        let channel = try makeChannel()
        let (exchange, future) = exchange(on: channel)
        channel.writeAndFlush(exchange, promise: nil)
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil)
        channel.pipeline.fireChannelInactive()
        guard case .closedBeforeResponse(_, requestWritten: true)? = failure(future) else {
            Issue.record("expected closedBeforeResponse after the write, got \(String(describing: failure(future)))")
            return
        }
    }

    @Test func anAnswerThatDoesNotFitItsBudgetIsNotReadUntilItDoes() throws {
        let channel = try makeChannel()
        let budget = ResponseBudget(limit: 1000)
        budget.take(900)  // the client has not read an earlier answer
        let (exchange, future) = exchange(on: channel, budget: budget)
        channel.writeAndFlush(exchange, promise: nil)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n"))
        // Reading stops: a read() does not reach the socket.
        let reads = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(reads, position: .first)
        channel.read()
        #expect(reads.count == 0)
        #expect(budget.held == 900)
        // The client reads its earlier answer: this one is reserved and reading goes on.
        budget.release(900)
        channel.embeddedEventLoop.run()
        #expect(reads.count == 1)
        #expect(budget.held == 500)
        try channel.writeInbound(ByteBuffer(repeating: 0x61, count: 500))
        let response = try future.wait()
        #expect(response.body.readableBytes == 500)
        // The answer keeps its reservation until whoever writes it to the client has counted the
        // response instead: no moment where it is in memory and not counted.
        #expect(response.heldBytes == 500 && budget.held == 500 && budget.peak == 900)
        budget.release(response.heldBytes)
        #expect(budget.held == 0)
    }

    @Test func anAnswerWaitingForAClosedClientIsAbandoned() throws {
        let channel = try makeChannel()
        let budget = ResponseBudget(limit: 100)
        budget.take(100)
        let (exchange, future) = exchange(on: channel, budget: budget)
        channel.writeAndFlush(exchange, promise: nil)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n"))
        budget.close()
        channel.embeddedEventLoop.run()
        guard case .abandoned? = failure(future) else {
            Issue.record("expected abandoned, got \(String(describing: failure(future)))")
            return
        }
        #expect(!channel.isActive)
    }
}

/// Counts `read()` calls that reach it.
final class ReadCounter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = Any
    var count = 0
    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}

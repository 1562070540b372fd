import LambdaInvoke
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// What one client connection is being sent: the answer bytes it holds (its `ResponseBudget`, which
/// also paces the Lambda answers read for it) and whether they reach the socket. A connection whose
/// answers make no progress for `sendTimeout` is closed, which frees every buffer it held (the
/// budget closes with it, so Lambda answers waiting for room are dropped unread).
///
/// Progress is measured at the socket (bytes handed to it less bytes it still buffers), so a client
/// that reads a large answer slowly but steadily is never cut off, while one that stops reading, or
/// keeps an HTTP/2 window at zero, is.
final class ConnectionOutput: @unchecked Sendable {
    // @unchecked: everything but `budget` (itself Sendable) is touched on the channel's event loop.
    let budget: ResponseBudget
    private let channel: any Channel
    private let sendTimeout: TimeAmount
    private let metrics: GatewayMetrics
    /// Next to the socket: the bytes it took, and the idle timeout.
    private let counter: SocketActivity
    /// Answers written whose write has not completed.
    private var pendingAnswers = 0
    private var check: Scheduled<Void>?
    /// Bytes the socket had taken at the last sign of progress, and when that was.
    private var written = 0
    private(set) var lastProgress = NIODeadline.now()
    /// Where answers are flushed with the other writes of the event loop's round; nil: at once.
    private let flushes: FlushBatch?

    init(channel: any Channel, settings: ProcessingSettings, metrics: GatewayMetrics, flushes: FlushBatch? = nil) {
        self.channel = channel
        self.flushes = flushes
        self.sendTimeout = TimeAmount(settings.sendTimeout)
        self.metrics = metrics
        self.counter = SocketActivity(idleTimeout: TimeAmount(settings.idleTimeout))
        let budget = ResponseBudget(limit: settings.connectionBufferLimit, observer: { metrics.heldAnswerBytesChanged(by: $0) })
        self.budget = budget
        // The progress check is cancelled with the connection: a scheduled task keeps what it
        // captures (this object, the channel and its pipeline) until it fires, so a check left to
        // fire held every connection closed in the last quarter of the send timeout (at 700 new
        // connections a second, thousands of them: tens of MB).
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.connectionEnded()
            self?.cancelCheck()
        }
    }

    /// Sends what was written for an answer: at the end of the event loop's round (through the
    /// pipeline, so the HTTP/1.1 handler's `flush` marks its answers as it passes), or now.
    func flush(_ context: ChannelHandlerContext) {
        if let flushes {
            flushes.flush(channel)
        } else {
            flushMarking(context)
        }
    }

    // MARK: Answers confirmed by the socket's drain (HTTP/1.1)

    /// An HTTP/1.1 answer written without a write promise: its size and what runs once it is sent.
    private struct Unconfirmed {
        var bytes: Int
        var then: (_ written: Bool) -> Void
    }

    /// Such answers not yet known to be sent, oldest first.
    private var unconfirmed = CircularBuffer<Unconfirmed>(initialCapacity: 2)
    /// How many of `unconfirmed` were flushed: the socket holds them once it holds nothing.
    private var flushedUnconfirmed = 0

    /// HTTP/1.1: answers are written without a promise and confirmed when the socket has taken
    /// every byte flushed with them. A write promise cost each answer a future of its own, and
    /// swift-nio-ssl's future, array and closure to pass it on (BENCHMARKS.md, session 23).
    ///
    /// The signal is the channel's writability, with both water marks at one byte: NIO marks the
    /// channel unwritable as soon as bytes wait for the socket, and writable again, within the same
    /// flush or when the socket drains later, once none wait. `SocketActivity` takes those events
    /// (they mean nothing else here) and reports the drain. The connection's end makes every answer
    /// still unconfirmed unsent.
    ///
    /// A later write's promise confirms them too (`writing`): NIO completes writes in order.
    func confirmsAnswersByDrain() {
        guard let options = channel.syncOptions else {
            preconditionFailure("HTTP/1.1 answers are confirmed through the channel's water marks, which \(type(of: channel)) does not offer")
        }
        do {
            try options.setOption(.writeBufferWaterMark, value: .init(low: 1, high: 1))
        } catch {
            // Only a closed channel refuses it: nothing is written on it, and its end makes any
            // answer unsent (`flushed` confirms only on an open channel).
            return
        }
        counter.drained = { [weak self] in self?.confirmFlushed() }
    }

    /// An HTTP/1.1 answer of `bytes` was written without a promise (`confirmsAnswersByDrain`); `then`
    /// runs once it is sent, or unsent when the connection ends first. As `writing`, otherwise.
    func writingUnconfirmed(_ bytes: Int, handingOver held: Int = 0, then: @escaping (_ written: Bool) -> Void) {
        answerStarted(bytes, handingOver: held)
        unconfirmed.append(Unconfirmed(bytes: bytes, then: then))
    }

    /// Answers ever queued unconfirmed that have ended. With those still queued, it numbers them:
    /// a write made when `unconfirmedEnded + unconfirmed.count` was n follows the answers
    /// numbered below n.
    private var unconfirmedEnded = 0

    /// A write made after answer `count - 1` was queued reached the socket: so did that answer and
    /// every one before it (NIO and swift-nio-ssl keep the order of writes).
    private func confirmQueued(before count: Int) {
        while unconfirmedEnded < count, let answer = unconfirmed.popFirst() {
            unconfirmedEnded &+= 1
            flushedUnconfirmed = max(flushedUnconfirmed - 1, 0)
            answerEnded(answer.bytes, written: true, then: answer.then)
        }
    }

    /// The connection ended (`channelInactive`, else its close future): writes not completed
    /// failed, and answers not confirmed were not sent. The budget closes first, as a failed
    /// write's did: their bytes going back must not let a Lambda answer waiting for room be read.
    func connectionEnded() {
        budget.close()
        endUnconfirmed()
    }

    /// The flush of the answers written so far is starting.
    private func flushing() {
        flushedUnconfirmed = unconfirmed.count
    }

    /// Flushes now, marking the answers it sends, and confirms them if the socket took them all.
    func flushMarking(_ context: ChannelHandlerContext) {
        flushing()
        context.flush()
        flushed()
    }

    /// After a flush: if nothing waits for the socket, every answer flushed is sent (the drain's
    /// event comes only when bytes were waiting, and a flush may find nothing left to write).
    private func flushed() {
        if flushedUnconfirmed > 0, channel.isWritable, channel.isActive { confirmFlushed() }
    }

    /// The socket holds every byte flushed so far.
    private func confirmFlushed() {
        while flushedUnconfirmed > 0, let answer = unconfirmed.popFirst() {
            flushedUnconfirmed -= 1
            unconfirmedEnded &+= 1
            answerEnded(answer.bytes, written: true, then: answer.then)
        }
    }

    /// Answers not confirmed were not sent.
    private func endUnconfirmed() {
        flushedUnconfirmed = 0
        while let answer = unconfirmed.popFirst() {
            unconfirmedEnded &+= 1
            answerEnded(answer.bytes, written: false, then: answer.then)
        }
    }

    private func cancelCheck() {
        check?.cancel()
        check = nil
    }

    /// Puts the byte counter and idle timer (`SocketActivity`) next to the socket; call on the
    /// channel's event loop.
    func install() throws {
        try channel.pipeline.syncOperations.addHandler(counter, position: .first)
    }

    /// An answer of `bytes` is on its way to the client; `done` completes when the socket took it
    /// (or the connection failed). `handingOver`: budget bytes the Lambda answer it was built from
    /// held, given back now that the answer itself is counted.
    /// `then` runs after, with whether the write succeeded: one callback on the future for both (a
    /// second one would cost the future an array of callbacks per answer).
    func writing(_ bytes: Int, done: EventLoopFuture<Void>, handingOver held: Int = 0, then: ((_ written: Bool) -> Void)? = nil) {
        answerStarted(bytes, handingOver: held)
        let budget = self.budget
        let channel = self.channel
        let queuedBefore = unconfirmedEnded + unconfirmed.count
        done.assumeIsolated().whenComplete { result in
            if case .success = result, queuedBefore > self.unconfirmedEnded { self.confirmQueued(before: queuedBefore) }
            // A write that failed because the connection is closing (NIO marks it inactive, then
            // fails its pending writes, then completes its close future, which closes the budget):
            // no Lambda answer waiting for room may be read for it now. A write that failed on one
            // HTTP/2 stream the client reset leaves the connection and its budget alone.
            if case .failure = result, !channel.isActive { budget.close() }
            if case .success = result {
                self.answerEnded(bytes, written: true, then: then)
            } else {
                self.answerEnded(bytes, written: false, then: then)
            }
        }
    }

    /// An answer's bytes are held from its write on, and the send timeout's check runs.
    private func answerStarted(_ bytes: Int, handingOver held: Int) {
        budget.take(bytes)
        if held > 0 { budget.release(held) }
        pendingAnswers += 1
        if check == nil {
            if measuresSocketProgress { written = socketWritten }
            lastProgress = .now()
            scheduleCheck(in: checkInterval)
        }
    }

    /// The answer's write completed (`written`) or failed.
    private func answerEnded(_ bytes: Int, written: Bool, then: ((_ written: Bool) -> Void)?) {
        budget.release(bytes)
        pendingAnswers -= 1
        lastProgress = .now()
        then?(written)
    }

    /// Resets the TCP connection (`SO_LINGER` 0, closed below TLS): no `close_notify` and no FIN,
    /// so a client reading a body that ends with the connection sees it was cut short (a FIN, or a
    /// `close_notify`, would mark its end).
    func reset() {
        guard let provider = channel as? any SocketOptionProvider else {
            counter.closeSocket()
            return
        }
        let counter = self.counter
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in counter.closeSocket() }
    }

    /// HTTP/2 streams open on the connection (the idle timeout never closes a connection with one).
    var openStreams = 0

    /// HTTP/2: a read of the connection is under way (`HTTP2ConnectionHandler`), and a flush asked
    /// for meanwhile (`flushAfterRead`) waits for its end, so that what one read brings answered
    /// (window updates, resets, refusals, a drain's GOAWAY) goes out in one write rather than one
    /// each. NIO's connection-management handler held flushes so while it was in the pipeline.
    /// (NIO's HTTP/2 handler, read complete before this one, usually sends them already: what
    /// matters is that no flush happens in the middle of a read.)
    private var reading = false
    private var flushWhenReadEnds = false

    func readStarted() {
        reading = true
    }

    /// The read ended: a flush asked for during it happens now.
    func readEnded(_ context: ChannelHandlerContext) {
        reading = false
        if flushWhenReadEnds {
            flushWhenReadEnds = false
            context.flush()
        }
    }

    /// Flushes now, or when the read under way ends.
    func flushAfterRead(_ context: ChannelHandlerContext) {
        if reading {
            flushWhenReadEnds = true
        } else {
            context.flush()
        }
    }

    /// HTTP/1.1: every byte the socket takes is an answer's. HTTP/2: PING and SETTINGS answers
    /// move bytes too, so progress is an answer's stream window opening, or an answer finishing.
    var measuresSocketProgress = true

    /// An HTTP/2 stream with an answer pending became writable: the client opened its window.
    func streamBecameWritable() {
        lastProgress = .now()
    }

    private var checkInterval: TimeAmount { .nanoseconds(max(sendTimeout.nanoseconds / 4, 1_000_000)) }

    private var buffered: Int { (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0 }

    /// Bytes the kernel has accepted so far: never goes down, moves whenever the client reads.
    private var socketWritten: Int { counter.handedDown - buffered }

    private func scheduleCheck(in delay: TimeAmount) {
        check = channel.eventLoop.assumeIsolated().scheduleTask(in: delay) { self.runCheck() }
    }

    private func runCheck() {
        check = nil
        let now = NIODeadline.now()
        if measuresSocketProgress {
            let socketWritten = self.socketWritten
            if socketWritten != written {
                written = socketWritten
                lastProgress = now
            }
        }
        guard pendingAnswers > 0 || buffered > 0, channel.isActive else { return }
        if now - lastProgress >= sendTimeout {
            metrics.connectionClosed(.sendTimeout)
            // Below TLS: a graceful TLS close would wait for a close_notify from a client that
            // reads nothing, keeping every buffer for NIOSSL's shutdown timeout.
            counter.closeSocket()
            return
        }
        scheduleCheck(in: checkInterval)
    }
}

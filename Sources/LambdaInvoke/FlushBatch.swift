import NIOCore
import Synchronization

/// Flushes channels of one event loop at the end of the loop's current round of work, one after the
/// other, instead of each as its write is made.
///
/// Each flush is a `write` system call, and on a busy gateway the peer it writes to (a client, the
/// Lambda endpoint) is often asleep, so each call also wakes a process on another core. Flushed one
/// by one between the reads of a round, the gateway's writes came far enough apart for each peer to
/// have gone back to sleep between them; flushed together, most find their peer already awake
/// (BENCHMARKS.md, "No task per request, flushes at the end of the tick").
///
/// A flush asked for in the loop's round of I/O runs after the round's last read; one asked for
/// while the loop runs its tasks runs after the tasks queued before it (NIO takes due timers in
/// turn with tasks, so a timer may run first). A connection that closes meanwhile loses what was
/// not flushed: the gateway's handlers flush before the closes they make.
public final class FlushBatch: @unchecked Sendable {
    // @unchecked: the lists are touched only on `eventLoop`.
    public let eventLoop: any EventLoop
    private var channels: [any Channel] = []
    /// The list being flushed; the two swap places each round, keeping their storage.
    private var flushing: [any Channel] = []

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Flushes `channel` at the end of the loop's current round, or now if it is another loop's
    /// channel or the call comes from off the loop.
    public func flush(_ channel: any Channel) {
        guard channel.eventLoop === eventLoop, eventLoop.inEventLoop else {
            channel.flush()
            return
        }
        if channels.isEmpty {
            eventLoop.execute { self.flushAll() }
        } else if channels.contains(where: { $0 === channel }) {
            return  // several answers on one connection (HTTP/2 streams): one flush
        }
        channels.append(channel)
    }

    private func flushAll() {
        // The lists swap before the flushes: a flush that leads to another write (a promise that
        // succeeds as the socket takes bytes) starts a new round.
        swap(&channels, &flushing)
        for channel in flushing { channel.flush() }
        flushing.removeAll(keepingCapacity: true)
    }
}

/// One `FlushBatch` per event loop, made on first use: the Invoke client's and the client
/// connections' flushes on one loop share its batch, so a round ends with one task for both.
public final class FlushBatches: Sendable {
    private let batches = Mutex<[ObjectIdentifier: FlushBatch]>([:])

    public init() {}

    /// The batch of `eventLoop` (it keeps the loop, so the key is never another loop's).
    public func batch(for eventLoop: any EventLoop) -> FlushBatch {
        batches.withLock { batches in
            if let batch = batches[ObjectIdentifier(eventLoop)] { return batch }
            let batch = FlushBatch(eventLoop: eventLoop)
            batches[ObjectIdentifier(eventLoop)] = batch
            return batch
        }
    }
}

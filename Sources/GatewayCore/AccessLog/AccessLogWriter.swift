import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Writes access-log lines on a thread of its own, never on an event loop: requests hand their
/// entries over (`submit`) and go on. Entries wait in a bounded buffer; when the sink is slower than
/// the traffic (a full disk, a pipe nobody reads) the buffer fills and further entries are dropped
/// and counted, so a request never waits for its log line.
///
/// Entries are rendered here, with the format in effect when their request ended, and written a
/// batch at a time with one `write(2)` per batch. The file sink is reopened on `reopen()` (SIGHUP,
/// after logrotate moved it), and whenever the configured sink changes.
final class AccessLogWriter: Sendable {
    struct Item: Sendable {
        var entry: AccessLogEntry
        var settings: AccessLogSettings

        /// Roughly what the entry holds in memory: its variable-length values and a fixed part.
        var bytes: Int {
            var bytes = 512 + (entry.path?.utf8.count ?? 0)
            for field in entry.requestHeaders { bytes += field.name.utf8.count + field.value.utf8.count }
            return bytes
        }
    }

    private struct State {
        var items: [Item] = []
        /// What the waiting entries hold, roughly (`Item.bytes`).
        var bytes = 0
        /// The thread waits on `wake` (a submit must signal it).
        var sleeping = false
        var reopenRequested = false
        var stopping = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let capacity: Int
    private let capacityBytes: Int
    private let metrics: GatewayMetrics
    private let logger: Logger

    /// `capacity`: entries that may wait for the sink; `capacityBytes`: what they may hold.
    init(capacity: Int = 16_384, capacityBytes: Int = 32 * 1024 * 1024, metrics: GatewayMetrics, logger: Logger) {
        self.capacity = capacity
        self.capacityBytes = capacityBytes
        self.metrics = metrics
        self.logger = logger
        Thread { [self] in self.loop() }.start()
    }

    /// Hands `item` to the thread; false (and counted) when the buffer is full.
    @discardableResult
    func submit(_ item: Item) -> Bool {
        let bytes = item.bytes
        let (accepted, wakeUp) = state.withLock { state -> (Bool, Bool) in
            guard !state.stopping, state.items.count < capacity, state.bytes + bytes <= capacityBytes else { return (false, false) }
            state.items.append(item)
            state.bytes += bytes
            defer { state.sleeping = false }
            return (true, state.sleeping)
        }
        if wakeUp { wake.signal() }
        if !accepted { metrics.accessLogLinesDropped(1, .sinkBehind) }
        return accepted
    }

    /// Closes and reopens the file sink before the next write (SIGHUP).
    func reopen() {
        let wakeUp = state.withLock { state in
            state.reopenRequested = true
            defer { state.sleeping = false }
            return state.sleeping
        }
        if wakeUp { wake.signal() }
    }

    /// Writes what is buffered, then ends the thread; waits at most `timeout` for it (a sink that
    /// blocks, a FIFO nobody reads, must not hold up the process's exit).
    func stop(timeout: Duration = .seconds(2)) {
        let (wakeUp, alreadyStopping) = state.withLock { state in
            let alreadyStopping = state.stopping
            state.stopping = true
            defer { state.sleeping = false }
            return (state.sleeping, alreadyStopping)
        }
        // A second stop (the service's, then its owner's) does not wait again.
        guard !alreadyStopping else { return }
        if wakeUp { wake.signal() }
        let (seconds, attoseconds) = timeout.components
        _ = finished.wait(timeout: .now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)))
    }

    // MARK: The thread

    private func loop() {
        // Its own name in `top -H` and /proc: a new thread carries its creator's (an event loop's),
        // and a name given before `start` is not applied on Linux.
        Thread.current.name = "access-log"
        // A write to a pipe whose reader went away fails with EPIPE here instead of raising SIGPIPE,
        // whose default action would end the process (the signal is thread-directed and stays
        // blocked on this thread only).
        var pipe = sigset_t()
        sigemptyset(&pipe)
        sigaddset(&pipe, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipe, nil)
        var sink = OpenSink()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64 * 1024)
        while true {
            let (items, reopen, stopping) = state.withLock { state -> ([Item], Bool, Bool) in
                let taken = state.items
                state.items = []
                state.bytes = 0
                let reopen = state.reopenRequested
                state.reopenRequested = false
                if taken.isEmpty && !reopen && !state.stopping { state.sleeping = true }
                return (taken, reopen, state.stopping)
            }
            if items.isEmpty && !reopen && !stopping {
                wake.wait()
                continue
            }
            if reopen { sink.close() }
            var pending = 0
            for item in items {
                if sink.target != item.settings.sink {
                    flush(&buffer, lines: &pending, to: &sink)
                    sink.close()
                    sink.target = item.settings.sink
                    sink.failureLogged = false
                }
                item.settings.format.render(item.entry, into: &buffer)
                pending += 1
                if buffer.count >= 64 * 1024 { flush(&buffer, lines: &pending, to: &sink) }
            }
            flush(&buffer, lines: &pending, to: &sink)
            if stopping && state.withLock({ $0.items.isEmpty }) {
                sink.close()
                finished.signal()
                return
            }
        }
    }

    /// Writes `buffer` (`lines` lines) to the sink, opening it first if needed.
    private func flush(_ buffer: inout [UInt8], lines: inout Int, to sink: inout OpenSink) {
        guard lines > 0 else { return }
        defer {
            buffer.removeAll(keepingCapacity: true)
            lines = 0
        }
        do {
            try sink.write(buffer)
            sink.failureLogged = false
            metrics.accessLogLinesWritten(lines)
        } catch {
            metrics.accessLogLinesDropped(lines, .sinkFailed)
            // Once per failing sink, not once per batch.
            if !sink.failureLogged {
                sink.failureLogged = true
                logger.error("access log not written", metadata: ["sink": "\(sink.target.map { "\($0)" } ?? "none")", "error": "\(error)"])
            }
            sink.close()
        }
    }
}

/// The writer thread's open sink: a descriptor for the configured target.
struct OpenSink {
    var target: AccessLogSettings.Sink?
    private var descriptor: Int32 = -1
    private var ownsDescriptor = false
    var failureLogged = false

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    mutating func close() {
        if ownsDescriptor && descriptor >= 0 { _ = Glibc.close(descriptor) }
        descriptor = -1
        ownsDescriptor = false
    }

    private mutating func open() throws {
        guard descriptor < 0, let target else { return }
        switch target {
        case .standardOutput:
            descriptor = STDOUT_FILENO
        case .standardError:
            descriptor = STDERR_FILENO
        case .file(let path):
            // Blocks on a FIFO until a reader opens it: this thread waits, requests do not.
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
            descriptor = fd
            ownsDescriptor = true
        }
    }

    /// Standard output and error are shared with the gateway's own log and status lines: written in
    /// pieces of at most `PIPE_BUF` bytes ending at a line's end, which a pipe (journald, a shipper)
    /// takes whole, so no other line lands inside an access-log line. A file takes a batch at once.
    static let sharedWriteLimit = Int(PIPE_BUF)

    mutating func write(_ bytes: [UInt8]) throws {
        try open()
        guard descriptor >= 0 else { return }
        let shared = target == .standardOutput || target == .standardError
        let pieces = shared ? Self.pieces(bytes, limit: Self.sharedWriteLimit) : [bytes.startIndex..<bytes.endIndex]
        try bytes.withUnsafeBytes { raw in
            for piece in pieces { try writeAll(UnsafeRawBufferPointer(rebasing: raw[piece])) }
        }
    }

    /// `bytes` (whole lines) cut into pieces of at most `limit` bytes, each ending at a line's end;
    /// a line longer than `limit` is a piece of its own.
    static func pieces(_ bytes: [UInt8], limit: Int) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var start = 0
        while start < bytes.count {
            var end = bytes.count
            if end - start > limit {
                if let newline = bytes[start..<(start + limit)].lastIndex(of: UInt8(ascii: "\n")) {
                    end = newline + 1
                } else if let next = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    end = next + 1
                }
            }
            pieces.append(start..<end)
            start = end
        }
        return pieces
    }

    private func writeAll(_ raw: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < raw.count {
            let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write failed: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }
}

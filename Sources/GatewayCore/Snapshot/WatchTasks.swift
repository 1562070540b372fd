import Synchronization

/// The watches the coordinator starts and stops as the linked set changes, run as child tasks of
/// the Consul source's task group: structured, so they end with it, and none outlives the source.
/// Each one is known by its `Handle`; `stop` cancels that child alone.
///
/// A handle is never reused, so it also tells a stopped watch's late callbacks from those of the
/// watch that replaced it (a callback compares its handle with the current one).
final class WatchTasks: Sendable {
    struct Handle: Hashable, Sendable {
        fileprivate let id: UInt64
    }

    /// A child to start: its handle, the stream that ends when it is stopped, and its body.
    private struct Start: Sendable {
        let handle: Handle
        let stopped: AsyncStream<Never>
        let body: @Sendable (Handle) async -> Void
    }

    private let starts: AsyncStream<Start>
    private let input: AsyncStream<Start>.Continuation
    private let lastID = Atomic<UInt64>(0)
    /// The stop of each child not stopped yet: `stop` ends its stream at once, without going
    /// through `run()`'s loop, so a stopped watch is cancelled one hop later, not two.
    private let stops = Mutex<[Handle: AsyncStream<Never>.Continuation]>([:])

    init() {
        (starts, input) = AsyncStream.makeStream()
    }

    /// Runs `body` as a child task of `run()` until it returns or is stopped; `body` is given its
    /// own handle.
    @discardableResult
    func start(_ body: @escaping @Sendable (Handle) async -> Void) -> Handle {
        let handle = Handle(id: lastID.add(1, ordering: .relaxed).newValue)
        let (stopped, stop) = AsyncStream<Never>.makeStream()
        stops.withLock { $0[handle] = stop }
        input.yield(Start(handle: handle, stopped: stopped, body: body))
        return handle
    }

    /// Cancels the child started with `handle` (before it runs, if it has not started yet);
    /// nothing if it has ended.
    func stop(_ handle: Handle) {
        stops.withLock { $0.removeValue(forKey: handle) }?.finish()
    }

    /// Runs the children until the calling task is cancelled; then cancels them and returns once
    /// they have ended.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await child in starts {
                // Stopped before it started: it never runs.
                guard stops.withLock({ $0[child.handle] != nil }) else { continue }
                group.addTask {
                    await withTaskGroup(of: Void.self) { running in
                        running.addTask { await child.body(child.handle) }
                        running.addTask { for await _ in child.stopped {} }
                        await running.next()
                        running.cancelAll()
                    }
                    // Ended on its own or stopped: its stop is forgotten either way.
                    self.stop(child.handle)
                }
            }
            group.cancelAll()
        }
    }
}

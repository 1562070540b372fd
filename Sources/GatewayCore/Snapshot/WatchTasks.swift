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

    private enum Command: Sendable {
        case start(Handle, @Sendable (Handle) async -> Void)
        case stop(Handle)
    }

    private let commands: AsyncStream<Command>
    private let input: AsyncStream<Command>.Continuation
    private let lastID = Atomic<UInt64>(0)

    init() {
        (commands, input) = AsyncStream.makeStream()
    }

    /// Runs `body` as a child task of `run()` until it returns or is stopped; `body` is given its
    /// own handle.
    @discardableResult
    func start(_ body: @escaping @Sendable (Handle) async -> Void) -> Handle {
        let handle = Handle(id: lastID.add(1, ordering: .relaxed).newValue)
        input.yield(.start(handle, body))
        return handle
    }

    /// Cancels the child started with `handle`; nothing if it has ended.
    func stop(_ handle: Handle) {
        input.yield(.stop(handle))
    }

    /// Runs the children until the calling task is cancelled; then cancels them and returns once
    /// they have ended.
    func run() async {
        await withDiscardingTaskGroup { group in
            // One stream per child that ends when the child is stopped.
            var stops: [Handle: AsyncStream<Never>.Continuation] = [:]
            for await command in commands {
                switch command {
                case .start(let handle, let body):
                    let (stopped, stop) = AsyncStream<Never>.makeStream()
                    stops[handle] = stop
                    group.addTask {
                        await withTaskGroup(of: Void.self) { child in
                            child.addTask { await body(handle) }
                            child.addTask { for await _ in stopped {} }
                            await child.next()
                            child.cancelAll()
                        }
                        // Ended on its own or stopped: its stop is forgotten either way.
                        self.stop(handle)
                    }
                case .stop(let handle):
                    stops.removeValue(forKey: handle)?.finish()
                }
            }
            group.cancelAll()
        }
    }
}

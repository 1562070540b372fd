import Atomics
import Synchronization

/// The current snapshot, swapped atomically. Readers on any thread load it without a lock; a request
/// keeps the snapshot it loaded until it completes. Observers hear of each publication (rare: a
/// configuration change), after the swap.
public final class SnapshotStore: Sendable {
    final class Box: AtomicReference, Sendable {
        let snapshot: GatewaySnapshot
        init(_ snapshot: GatewaySnapshot) { self.snapshot = snapshot }
    }

    private let current: ManagedAtomic<Box>
    private let observers = Mutex<[@Sendable (_ previous: GatewaySnapshot, _ current: GatewaySnapshot) -> Void]>([])

    public init(_ initial: GatewaySnapshot = .empty) {
        current = ManagedAtomic(Box(initial))
    }

    public var snapshot: GatewaySnapshot {
        currentBox.snapshot
    }

    /// The current snapshot in its box: a request reads the few members it needs through it, where
    /// `snapshot` would copy (and retain) every one of its references.
    var currentBox: Box {
        current.load(ordering: .acquiring)
    }

    public func publish(_ snapshot: GatewaySnapshot) {
        let previous = current.exchange(Box(snapshot), ordering: .acquiringAndReleasing).snapshot
        for observer in observers.withLock({ $0 }) { observer(previous, snapshot) }
    }

    /// Calls `observer` with the previous and the new snapshot after each `publish`, on the
    /// publisher's thread; it must not block.
    public func onPublish(_ observer: @escaping @Sendable (_ previous: GatewaySnapshot, _ current: GatewaySnapshot) -> Void) {
        observers.withLock { $0.append(observer) }
    }
}

import Atomics

/// The current snapshot, swapped atomically. Readers on any thread load it without a lock; a request
/// keeps the snapshot it loaded until it completes.
public final class SnapshotStore: Sendable {
    final class Box: AtomicReference, Sendable {
        let snapshot: GatewaySnapshot
        init(_ snapshot: GatewaySnapshot) { self.snapshot = snapshot }
    }

    private let current: ManagedAtomic<Box>

    public init(_ initial: GatewaySnapshot = .empty) {
        current = ManagedAtomic(Box(initial))
    }

    public var snapshot: GatewaySnapshot {
        current.load(ordering: .acquiring).snapshot
    }

    public func publish(_ snapshot: GatewaySnapshot) {
        current.store(Box(snapshot), ordering: .releasing)
    }
}

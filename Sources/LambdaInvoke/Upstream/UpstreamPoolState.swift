import NIOCore

/// The bookkeeping of one endpoint's connection pool, without I/O: which connections are idle,
/// how many are open, who waits for one. `Connection` is abstract so that tests can drive it
/// with plain values. Every transition returns what the caller must do outside the pool's lock.
struct UpstreamPoolState<Connection: AnyObject, Waiter> {
    struct Idle {
        var connection: Connection
        var since: NIODeadline
    }

    let limit: Int
    /// Most recently used last: connections are taken from the end, so a few stay busy and
    /// the rest age out.
    private(set) var idle: [Idle] = []
    /// Connected or connecting, busy or idle.
    private(set) var open = 0
    private(set) var waiters: [(id: Int, waiter: Waiter)] = []
    private(set) var isShutDown = false
    private var lastWaiterID = 0

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    enum LeaseAction {
        /// Use this idle connection.
        case use(Connection)
        /// Open a connection: it counts as open from now.
        case connect
        /// All `limit` connections are busy: the waiter, if one was given, is queued under `id`.
        case wait(id: Int?)
        case shutDown
    }

    /// Takes an idle connection (the most recent one for which `prefer` holds, else the most
    /// recent), or a new connection's slot, or queues `waiter`.
    mutating func lease(waiter: Waiter?, prefer: (Connection) -> Bool) -> LeaseAction {
        if isShutDown { return .shutDown }
        if !idle.isEmpty {
            let index = idle.lastIndex(where: { prefer($0.connection) }) ?? idle.index(before: idle.endIndex)
            return .use(idle.remove(at: index).connection)
        }
        if open < limit {
            open += 1
            return .connect
        }
        guard let waiter else { return .wait(id: nil) }
        lastWaiterID += 1
        waiters.append((lastWaiterID, waiter))
        return .wait(id: lastWaiterID)
    }

    enum HandOver {
        case none
        /// Give the waiter this connection.
        case connection(Waiter, Connection)
        /// A slot came free: the waiter opens a connection (counted as open already).
        case connect(Waiter)
        /// The pool is shutting down: close the connection.
        case close(Connection)
    }

    /// A request finished on `connection`. A reusable connection goes to the first waiter or
    /// back to the idle list; one that is not reusable is being closed, and `closed` follows.
    mutating func released(_ connection: Connection, reusable: Bool, now: NIODeadline) -> HandOver {
        guard reusable else { return .none }
        if isShutDown { return .close(connection) }
        if !waiters.isEmpty {
            return .connection(waiters.removeFirst().waiter, connection)
        }
        idle.append(Idle(connection: connection, since: now))
        return .none
    }

    /// A connection closed (whatever the reason), or an attempt to open one failed: its slot is
    /// free. The first waiter, if any, takes the slot.
    mutating func closed(_ connection: Connection?) -> HandOver {
        if let connection, let index = idle.firstIndex(where: { $0.connection === connection }) {
            idle.remove(at: index)
        }
        open -= 1
        if !isShutDown, !waiters.isEmpty, open < limit {
            open += 1
            return .connect(waiters.removeFirst().waiter)
        }
        return .none
    }

    /// The waiter queued under `id`, if it is still waiting (its deadline passed).
    mutating func removeWaiter(id: Int) -> Waiter? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return waiters.remove(at: index).waiter
    }

    /// Idle connections unused since before `cutoff`, taken out of the pool to be closed.
    mutating func expire(before cutoff: NIODeadline) -> [Connection] {
        guard idle.contains(where: { $0.since < cutoff }) else { return [] }
        let expired = idle.filter { $0.since < cutoff }.map(\.connection)
        idle.removeAll { $0.since < cutoff }
        return expired
    }

    /// Stops leasing: every waiter and idle connection is handed back to be failed and closed.
    mutating func shutDown() -> (waiters: [Waiter], idle: [Connection]) {
        isShutDown = true
        let result = (waiters.map(\.waiter), idle.map(\.connection))
        waiters.removeAll()
        idle.removeAll()
        return result
    }
}

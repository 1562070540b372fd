import NIOCore
import NIOSSL
import Synchronization

/// One `UpstreamPool` per endpoint (a custom endpoint URL, or one regional Lambda host per region
/// in use), made on first use and sharing one TLS context.
final class UpstreamPools: Sendable {
    private let group: any EventLoopGroup
    private let tlsContext: NIOSSLContext
    private let limit: Int
    private let connectTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    /// Each event loop's flush batch, shared by every pool's connections on that loop.
    let flushes = FlushBatches()
    /// Nil once shut down.
    private let pools = Mutex<[String: UpstreamPool]?>([:])

    init(group: any EventLoopGroup, tlsContext: NIOSSLContext, limit: Int, connectTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.group = group
        self.tlsContext = tlsContext
        self.limit = limit
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    /// The pool for `baseURL` (`https://host[:port]`).
    func pool(for baseURL: String) throws(UpstreamFailure) -> UpstreamPool {
        if let pool = pools.withLock({ $0?[baseURL] }) { return pool }
        let target = UpstreamTarget(baseURL: baseURL)
        let pool: UpstreamPool? = pools.withLock { pools in
            guard pools != nil else { return nil }
            if let pool = pools![baseURL] { return pool }
            let pool = UpstreamPool(target: target, limit: limit, group: group, tlsContext: tlsContext, connectTimeout: connectTimeout, idleTimeout: idleTimeout, flushes: flushes)
            pools![baseURL] = pool
            return pool
        }
        guard let pool else { throw .shutDown }
        return pool
    }

    /// All pools' figures, summed.
    var statistics: UpstreamPoolStatistics {
        let all = pools.withLock { $0.map { Array($0.values) } ?? [] }
        return all.reduce(into: UpstreamPoolStatistics()) { sum, pool in sum.add(pool.statistics) }
    }

    func shutdown() async {
        let all = pools.withLock { pools in
            defer { pools = nil }
            return pools.map { Array($0.values) } ?? []
        }
        for pool in all { await pool.shutdown() }
    }
}

/// What `/metrics` shows of the connections to Lambda.
public struct UpstreamPoolStatistics: Sendable, Hashable {
    /// Connections open (or being opened), idle ones included.
    public var open = 0
    /// Connections waiting in the pool for a request.
    public var idle = 0
    /// TLS handshakes to Lambda that completed, and that failed (or were cut by a failed connect).
    public var handshakes = 0
    public var failedHandshakes = 0

    public init() {}

    init(open: Int, idle: Int, handshakes: Int, failedHandshakes: Int) {
        self.open = open
        self.idle = idle
        self.handshakes = handshakes
        self.failedHandshakes = failedHandshakes
    }

    mutating func add(_ other: UpstreamPoolStatistics) {
        open += other.open
        idle += other.idle
        handshakes += other.handshakes
        failedHandshakes += other.failedHandshakes
    }
}

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
            let pool = UpstreamPool(target: target, limit: limit, group: group, tlsContext: tlsContext, connectTimeout: connectTimeout, idleTimeout: idleTimeout)
            pools![baseURL] = pool
            return pool
        }
        guard let pool else { throw .shutDown }
        return pool
    }

    func shutdown() async {
        let all = pools.withLock { pools in
            defer { pools = nil }
            return pools.map { Array($0.values) } ?? []
        }
        for pool in all { await pool.shutdown() }
    }
}

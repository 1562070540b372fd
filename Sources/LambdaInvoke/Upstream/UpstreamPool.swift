import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Where one pool's connections go.
struct UpstreamTarget: Sendable, Hashable, CustomStringConvertible {
    var host: String
    var port: Int
    var tls: Bool

    /// `https://host[:port]` or `http://host:port`, as `LambdaEndpointResolver` gives it (it has
    /// checked the scheme).
    init(baseURL: String) {
        let tls = baseURL.hasPrefix("https://")
        let authority = baseURL.dropFirst(tls ? 8 : 7)
        var host = Substring(authority)
        var port = tls ? 443 : 80
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = authority[authority.index(after: authority.startIndex)..<close]
            let rest = authority[authority.index(after: close)...]
            if rest.hasPrefix(":"), let explicit = Int(rest.dropFirst()) { port = explicit }
        } else if let colon = authority.lastIndex(of: ":"), let explicit = Int(authority[authority.index(after: colon)...]) {
            host = authority[..<colon]
            port = explicit
        }
        self.host = String(host)
        self.port = port
        self.tls = tls
    }

    /// The SNI name, and the name the certificate is checked against; an IP address is checked
    /// against the certificate's IP SANs instead.
    var serverName: String? {
        (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }

    var description: String { "\(tls ? "https" : "http")://\(host):\(port)" }
}

/// Keep-alive HTTP/1.1 connections to one Lambda endpoint, at most `limit` of them, shared by every
/// event loop. A request takes an idle connection (one on its own event loop when there is one),
/// opens a new one while under the limit, or waits for one to come free.
final class UpstreamPool: Sendable {
    /// One pooled connection.
    final class Connection: Sendable {
        let channel: any Channel
        /// The channel's `UpstreamExchangeHandler`, to hand exchanges to on the channel's loop.
        let handler: NIOLoopBoundBox<UpstreamExchangeHandler?>
        init(channel: any Channel, handler: NIOLoopBoundBox<UpstreamExchangeHandler?>) {
            self.channel = channel
            self.handler = handler
        }
    }

    /// What a waiting request is told when it is its turn.
    enum Turn: Sendable {
        case connection(Connection)
        case connect
        case failed(UpstreamFailure)
    }

    struct Lease {
        var connection: Connection
        /// The connection had served before (it was idle in the pool).
        var reused: Bool
    }

    let target: UpstreamTarget
    private let group: any EventLoopGroup
    private let tlsContext: NIOSSLContext?
    private let connectTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private let flushes: FlushBatches
    private let state: Mutex<UpstreamPoolState<Connection, CheckedContinuation<Turn, Never>>>
    private let sweeper: Mutex<RepeatedTask?> = Mutex(nil)
    /// TLS handshakes that completed and that failed (`statistics`).
    private let handshakes = Atomic<Int>(0)
    private let failedHandshakes = Atomic<Int>(0)

    init(
        target: UpstreamTarget, limit: Int, group: any EventLoopGroup, tlsContext: NIOSSLContext?, connectTimeout: TimeAmount, idleTimeout: TimeAmount,
        flushes: FlushBatches = FlushBatches()
    ) {
        self.flushes = flushes
        self.target = target
        self.group = group
        self.tlsContext = target.tls ? tlsContext : nil
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.state = Mutex(UpstreamPoolState(limit: limit))
        let interval = max(TimeAmount.milliseconds(100), .nanoseconds(idleTimeout.nanoseconds / 4))
        let task = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            self?.closeExpired()
        }
        sweeper.withLock { $0 = task }
    }

    /// Sends `request` and returns the whole answer. The connection goes back to the pool (or is
    /// closed) before the caller resumes.
    func execute(_ request: UpstreamRequest, deadline: NIODeadline, maximumResponseBytes: Int, budget: ResponseBudget? = nil, stream: UpstreamStreamSink? = nil) async throws(UpstreamFailure)
        -> UpstreamResponse
    {
        let lease = try await self.lease(deadline: deadline)
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Result<UpstreamResponse, UpstreamFailure>, Never>) in
            exchange(request, on: lease, deadline: deadline, maximumResponseBytes: maximumResponseBytes, budget: budget, stream: stream) { continuation.resume(returning: $0) }
        }
        return try outcome.get()
    }

    typealias Completion = @Sendable (Result<UpstreamResponse, UpstreamFailure>) -> Void

    /// `execute` for a caller on `eventLoop`, whose `completion` runs there. With an idle connection
    /// at hand (the usual case under load, one on the caller's own loop when there is one) the
    /// exchange is callbacks only: no task and no future (the exchange is handed to the
    /// connection's handler directly). Opening a connection, or waiting for one to come free, goes
    /// on in a task.
    func execute(
        _ request: UpstreamRequest,
        deadline: NIODeadline,
        maximumResponseBytes: Int,
        budget: ResponseBudget?,
        stream: UpstreamStreamSink? = nil,
        on eventLoop: any EventLoop,
        completion: @escaping Completion
    ) {
        let onLoop: Completion = { outcome in
            if eventLoop.inEventLoop {
                completion(outcome)
            } else {
                eventLoop.execute { completion(outcome) }
            }
        }
        let action = state.withLock { $0.lease(waiter: nil, prefer: { $0.channel.eventLoop.inEventLoop }) }
        switch action {
        case .use(let connection):
            let lease = Lease(connection: connection, reused: true)
            exchange(request, on: lease, deadline: deadline, maximumResponseBytes: maximumResponseBytes, budget: budget, stream: stream, completion: onLoop)
        case .shutDown:
            onLoop(.failure(.shutDown))
        case .connect:
            // A slot is already counted for this request: open its connection.
            Task {
                let connection: Connection
                do throws(UpstreamFailure) {
                    connection = try await self.connect(deadline: deadline)
                } catch {
                    onLoop(.failure(error))
                    return
                }
                let lease = Lease(connection: connection, reused: false)
                self.exchange(request, on: lease, deadline: deadline, maximumResponseBytes: maximumResponseBytes, budget: budget, stream: stream, completion: onLoop)
            }
        case .wait:
            // Nothing was taken: queue as `execute` does.
            Task {
                do throws(UpstreamFailure) {
                    onLoop(.success(try await self.execute(request, deadline: deadline, maximumResponseBytes: maximumResponseBytes, budget: budget, stream: stream)))
                } catch {
                    onLoop(.failure(error))
                }
            }
        }
    }

    /// One exchange on a leased connection. The connection goes back to the pool (or is closed) as
    /// the answer completes, then `completion` runs, on the connection's event loop.
    private func exchange(
        _ request: UpstreamRequest,
        on lease: Lease,
        deadline: NIODeadline,
        maximumResponseBytes: Int,
        budget: ResponseBudget?,
        stream: UpstreamStreamSink? = nil,
        completion: @escaping Completion
    ) {
        let channel = lease.connection.channel
        let completeExchange: @Sendable (Result<UpstreamResponse, UpstreamFailure>) -> Void = { result in
            let reusable = (try? result.get())?.keepAlive ?? false
            self.release(lease.connection, reusable: reusable)
            completion(
                result.mapError { failure in
                    // A reused connection that closes before the request was completely written lost
                    // the race with the endpoint closing it while it was idle.
                    if case .closedBeforeResponse(let cause, requestWritten: false) = failure, lease.reused { return .staleConnection(cause: cause) }
                    return failure
                })
        }
        // Handed to the connection's exchange handler, on its loop: the usual lease is an idle
        // connection on the caller's own loop, and then this is a call. No flush here: the handler
        // flushes the request itself, with the other writes of its event loop's round (`FlushBatch`).
        let exchange = UpstreamExchange(
            request: request, completion: completeExchange, deadline: deadline, maximumResponseBytes: maximumResponseBytes, budget: budget, stream: stream
        )
        let handler = lease.connection.handler
        if channel.eventLoop.inEventLoop {
            Self.start(exchange, on: handler)
        } else {
            channel.eventLoop.execute { Self.start(exchange, on: handler) }
        }
    }

    /// On the connection's loop: its handler takes the exchange, or, once the channel is gone,
    /// the exchange ends as one whose request was never written.
    private static func start(_ exchange: UpstreamExchange, on handler: NIOLoopBoundBox<UpstreamExchangeHandler?>) {
        guard let handler = handler.value else {
            exchange.completion(.failure(.closedBeforeResponse(cause: ChannelError.ioOnClosedChannel, requestWritten: false)))
            return
        }
        handler.start(exchange)
    }

    private func lease(deadline: NIODeadline) async throws(UpstreamFailure) -> Lease {
        let action = state.withLock { $0.lease(waiter: nil, prefer: { $0.channel.eventLoop.inEventLoop }) }
        switch action {
        case .use(let connection):
            return Lease(connection: connection, reused: true)
        case .connect:
            return Lease(connection: try await connect(deadline: deadline), reused: false)
        case .shutDown:
            throw .shutDown
        case .wait:
            break
        }
        // All connections are busy: queue, and decide again under the same lock, since one may
        // have come free in between.
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
            let action = state.withLock { $0.lease(waiter: continuation, prefer: { $0.channel.eventLoop.inEventLoop }) }
            switch action {
            case .use(let connection): continuation.resume(returning: .connection(connection))
            case .connect: continuation.resume(returning: .connect)
            case .shutDown: continuation.resume(returning: .failed(.shutDown))
            case .wait(let id):
                guard let id else { return }
                group.any().scheduleTask(deadline: deadline) { [weak self] in
                    if let waiter = self?.state.withLock({ $0.removeWaiter(id: id) }) {
                        waiter.resume(returning: .failed(.timedOut))
                    }
                }
            }
        }
        switch turn {
        case .connection(let connection): return Lease(connection: connection, reused: true)
        case .connect: return Lease(connection: try await connect(deadline: deadline), reused: false)
        case .failed(let failure): throw failure
        }
    }

    /// Opens a connection in a slot already counted as open; gives the slot back if that fails.
    private func connect(deadline: NIODeadline) async throws(UpstreamFailure) -> Connection {
        let timeout = min(connectTimeout, deadline - .now())
        let tlsContext = self.tlsContext
        let serverName = target.serverName
        let loop = group.any()
        let ready = loop.makePromise(of: Void.self)
        let batch = flushes.batch(for: loop)
        let handler = NIOLoopBoundBox.makeEmptyBox(valueType: UpstreamExchangeHandler.self, eventLoop: loop)
        do {
            let channel = try await ClientBootstrap(group: loop)
                .connectTimeout(max(timeout, .milliseconds(1)))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                // One read per wake-up: an answer waiting for its client's budget stays in the
                // socket, rather than up to four reads of it in memory.
                .channelOption(.maxMessagesPerRead, value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        do {
                            if let tlsContext {
                                try pipeline.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                            }
                            let exchanges = UpstreamExchangeHandler(readiness: ready, waitsForTLS: tlsContext != nil, flushes: batch)
                            try pipeline.addHandler(exchanges)
                            handler.value = exchanges
                        } catch {
                            ready.fail(error)
                            throw error
                        }
                    }
                }
                .connect(host: target.host, port: target.port)
                .get()
            do {
                try await ready.futureResult.get()
            } catch {
                if tlsContext != nil { failedHandshakes.add(1, ordering: .relaxed) }
                channel.close(promise: nil)
                throw error
            }
            if tlsContext != nil { handshakes.add(1, ordering: .relaxed) }
            let connection = Connection(channel: channel, handler: handler)
            channel.closeFuture.whenComplete { _ in self.closed(connection) }
            return connection
        } catch {
            // A connect that failed before the channel's handlers were added (a deadline already
            // passed: NIO gives up before it makes a channel) never completed it.
            ready.fail(error)
            closed(nil)
            if let error = error as? ChannelError, case .connectTimeout = error, timeout < connectTimeout { throw .timedOut }
            throw .connect(error)
        }
    }

    /// Connections open and idle now, and TLS handshakes so far.
    var statistics: UpstreamPoolStatistics {
        let (open, idle) = state.withLock { ($0.open, $0.idle.count) }
        return UpstreamPoolStatistics(
            open: open, idle: idle,
            handshakes: handshakes.load(ordering: .relaxed), failedHandshakes: failedHandshakes.load(ordering: .relaxed)
        )
    }

    private func release(_ connection: Connection, reusable: Bool) {
        let handOver = state.withLock { $0.released(connection, reusable: reusable, now: .now()) }
        perform(handOver)
    }

    private func closed(_ connection: Connection?) {
        let handOver = state.withLock { $0.closed(connection) }
        perform(handOver)
    }

    private func perform(_ handOver: UpstreamPoolState<Connection, CheckedContinuation<Turn, Never>>.HandOver) {
        switch handOver {
        case .none: break
        case .connection(let waiter, let connection): waiter.resume(returning: .connection(connection))
        case .connect(let waiter): waiter.resume(returning: .connect)
        case .close(let connection): connection.channel.close(promise: nil)
        }
    }

    /// Idle and open (idle, busy or connecting) connections, for tests and diagnostics.
    var counts: (idle: Int, open: Int) {
        state.withLock { ($0.idle.count, $0.open) }
    }

    private func closeExpired() {
        let expired = state.withLock { $0.expire(before: .now() - idleTimeout) }
        for connection in expired { connection.channel.close(promise: nil) }
    }

    /// Fails waiting requests, closes idle connections, and closes busy ones as they finish.
    func shutdown() async {
        sweeper.withLock {
            $0?.cancel()
            $0 = nil
        }
        let (waiters, idle) = state.withLock { $0.shutDown() }
        for waiter in waiters { waiter.resume(returning: .failed(.shutDown)) }
        for connection in idle {
            try? await connection.channel.close()
        }
    }
}

import Atomics
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A listener as a service: binds, serves until graceful shutdown, then stops accepting, drains the
/// open connections and lets in-flight requests finish (bounded by `drainTimeout`).
public final class GatewayListener: Service, Sendable {
    /// What the listener accepts.
    public enum Kind: Sendable {
        /// Mesh mTLS; the service comes from SNI, the caller from the client certificate.
        case mesh(MeshTLSAcceptor)
        /// Plaintext HTTP/1.1 or h2c for one service, with no authentication and no intentions:
        /// what a connected proxy's upstream listener does (`--upstream NAME=HOST:PORT`).
        case direct(service: String)
    }

    let host: String
    let port: Int
    let kind: Kind
    let processor: RequestProcessor
    let group: any EventLoopGroup
    let logger: Logger
    let drainTimeout: Duration
    let onBound: @Sendable (SocketAddress) -> Void

    public convenience init(
        host: String, port: Int, acceptor: MeshTLSAcceptor, processor: RequestProcessor, group: any EventLoopGroup, logger: Logger, drainTimeout: Duration = .seconds(30),
        onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) {
        self.init(host: host, port: port, kind: .mesh(acceptor), processor: processor, group: group, logger: logger, drainTimeout: drainTimeout, onBound: onBound)
    }

    public init(
        host: String, port: Int, kind: Kind, processor: RequestProcessor, group: any EventLoopGroup, logger: Logger, drainTimeout: Duration = .seconds(30),
        onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) {
        self.host = host
        self.port = port
        self.kind = kind
        self.processor = processor
        self.group = group
        self.logger = logger
        self.drainTimeout = drainTimeout
        self.onBound = onBound
    }

    public func run() async throws {
        let kind = self.kind
        let processor = self.processor
        let open = ManagedAtomic(0)
        let maximum = processor.settings.maxConnections
        let logger = self.logger
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                // Over the cap a new connection is closed before a byte is read from it, so the
                // ones already open keep their file descriptors, memory and event-loop time.
                guard open.loadThenWrappingIncrement(ordering: .relaxed) < maximum else {
                    open.wrappingDecrement(ordering: .relaxed)
                    processor.metrics.connectionClosed(.maxConnections)
                    logger.debug("connection closed: --max-connections reached", metadata: ["max": "\(maximum)"])
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.wrappingDecrement(ordering: .relaxed) }
                switch kind {
                case .mesh(let acceptor):
                    return acceptor.configure(channel) { channel, connection in processor.configureHTTP(channel, connection: connection) }
                case .direct(let service):
                    return processor.configureHTTP(
                        channel,
                        connection: ClientConnection(
                            serviceName: service, caller: .direct, negotiatedProtocol: nil, peerIP: channel.remoteAddress?.ipAddress ?? "",
                            accessLog: AccessLogConnection(localAddress: AccessLogConnection.address(channel.localAddress), remoteAddress: AccessLogConnection.address(channel.remoteAddress))
                        )
                    )
                }
            }
            .bind(host: host, port: port)
            .get()
        if let address = channel.localAddress { onBound(address) }
        logger.info("listener bound", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "kind": "\(kind.label)"])
        try? await gracefulShutdown()
        logger.info("stopping: no new connections; draining in-flight requests", metadata: ["in_flight": "\(processor.inFlightCount)"])
        try? await channel.close()
        // Open connections finish what they are doing and close: HTTP/1.1 after the response in
        // flight, HTTP/2 after a GOAWAY and its open streams.
        let deadline = ContinuousClock.now + drainTimeout
        processor.connections.drainAll()
        await processor.waitUntilIdle(timeout: deadline - ContinuousClock.now)
        await processor.connections.waitUntilAllClosed(timeout: deadline - ContinuousClock.now)
    }
}

extension GatewayListener.Kind {
    var label: String {
        switch self {
        case .mesh: "mesh"
        case .direct(let service): "direct:\(service)"
        }
    }
}

/// Runs a long-lived task as a service, cancelled on graceful shutdown.
public struct BackgroundService: Service {
    let body: @Sendable () async -> Void

    public init(_ body: @escaping @Sendable () async -> Void) {
        self.body = body
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            await body()
        }
    }
}

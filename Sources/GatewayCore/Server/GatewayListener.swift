import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The mTLS listener as a service: binds, serves until graceful shutdown, then stops accepting and
/// lets in-flight requests finish (bounded by `drainTimeout`).
public final class GatewayListener: Service, Sendable {
    let host: String
    let port: Int
    let acceptor: MeshTLSAcceptor
    let processor: RequestProcessor
    let group: any EventLoopGroup
    let logger: Logger
    let drainTimeout: Duration
    let onBound: @Sendable (SocketAddress) -> Void

    public init(host: String, port: Int, acceptor: MeshTLSAcceptor, processor: RequestProcessor, group: any EventLoopGroup, logger: Logger, drainTimeout: Duration = .seconds(30), onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.acceptor = acceptor
        self.processor = processor
        self.group = group
        self.logger = logger
        self.drainTimeout = drainTimeout
        self.onBound = onBound
    }

    public func run() async throws {
        let acceptor = self.acceptor
        let processor = self.processor
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                acceptor.configure(channel) { channel, connection in processor.configureHTTP(channel, connection: connection) }
            }
            .bind(host: host, port: port)
            .get()
        if let address = channel.localAddress { onBound(address) }
        logger.info("mesh listener bound", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        try? await gracefulShutdown()
        logger.info("stopping: no new connections; draining in-flight requests", metadata: ["in_flight": "\(processor.inFlightCount)"])
        try? await channel.close()
        await processor.waitUntilIdle(timeout: drainTimeout)
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

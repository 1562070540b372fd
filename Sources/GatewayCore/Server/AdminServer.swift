import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The admin port (loopback by default): `/ready`, `/live`, `/config`, `/metrics`.
public final class AdminServer: Service, Sendable {
    let host: String
    let port: Int
    let store: SnapshotStore
    let processor: RequestProcessor
    let group: any EventLoopGroup
    let logger: Logger
    let onBound: @Sendable (SocketAddress) -> Void

    public init(host: String, port: Int, store: SnapshotStore, processor: RequestProcessor, group: any EventLoopGroup, logger: Logger, onBound: @escaping @Sendable (SocketAddress) -> Void = { _ in })
    {
        self.host = host
        self.port = port
        self.store = store
        self.processor = processor
        self.group = group
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        let routes = AdminRoutes(store: store, processor: processor)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(routes: routes))
                }
            }
            .bind(host: host, port: port)
            .get()
        if let address = channel.localAddress { onBound(address) }
        try? await gracefulShutdown()
        try? await channel.close()
    }
}

struct AdminRoutes: Sendable {
    let store: SnapshotStore
    let processor: RequestProcessor

    func answer(_ path: String) -> (HTTPResponseStatus, String, String) {
        let snapshot = store.snapshot
        switch path {
        case "/live":
            return (.ok, "text/plain", "live\n")
        case "/ready":
            return snapshot.version > 0 ? (.ok, "text/plain", "ready\n") : (.serviceUnavailable, "text/plain", "waiting for the first configuration from Consul\n")
        case "/config":
            return (.ok, "application/json", configJSON(snapshot))
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4", processor.metrics.exposition(snapshot: snapshot, inFlight: processor.inFlightCount, openConnections: processor.connections.count))
        default:
            return (.notFound, "text/plain", "not found\n")
        }
    }

    /// The snapshot without private keys.
    func configJSON(_ snapshot: GatewaySnapshot) -> String {
        let services: [String: Any] = snapshot.services.mapValues { service in
            [
                "snis": service.snis,
                "function": service.lambda.function.description,
                "payloadFormat": service.lambda.payloadFormat.rawValue,
                "passthrough": service.lambda.passthrough,
                "invocationType": service.lambda.invocationType.rawValue,
                "protocol": service.protocolName,
                "requestTimeoutSeconds": service.requestTimeout.map { Double($0.components.seconds) } as Any,
                "intentions": service.intentions.count,
                "leaf": ["serviceURI": service.leaf.serviceURI, "serial": service.leaf.serial, "validBefore": ISO8601DateFormatter().string(from: service.leaf.validBefore)],
            ] as [String: Any]
        }
        let document: [String: Any] = [
            "version": snapshot.version,
            "trustDomain": snapshot.trustDomain,
            "datacenter": snapshot.datacenter,
            "roots": snapshot.rootPEMs.count,
            "defaultIntentionPolicy": snapshot.defaultIntentionPolicy.rawValue,
            "services": services,
            "notServed": snapshot.notServed.mapValues(\.text),
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

final class AdminHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let routes: AdminRoutes

    init(routes: AdminRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let (status, contentType, body) = routes.answer(String(head.uri.split(separator: "?").first ?? ""))
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

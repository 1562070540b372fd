import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOTLS

/// A Consul mesh gateway's data path on 127.0.0.1: reads the SNI of each connection's TLS
/// ClientHello without terminating TLS, and forwards the connection's bytes, ClientHello first, to
/// the port routed for that SNI (unknown SNI: closed). Half-closes are passed on both ways.
public final class MeshGatewayStandIn: Sendable {
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>
    public let port: Int

    struct State {
        var routes: [String: Int] = [:]
        var snis: [String] = []
        var connections = 0
    }

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        let state = NIOLockedValueBox(State())
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { inbound in
                state.withLockedValue { $0.connections += 1 }
                let sni = ByteToMessageHandler(
                    SNIHandler { result in
                        let name: String? = if case .hostname(let host) = result { host } else { nil }
                        let port = state.withLockedValue { state -> Int? in
                            state.snis.append(name ?? "")
                            return name.flatMap { state.routes[$0] }
                        }
                        guard let port else {
                            inbound.close(promise: nil)
                            return inbound.eventLoop.makeSucceededVoidFuture()
                        }
                        return ClientBootstrap(group: inbound.eventLoop)
                            .channelOption(.allowRemoteHalfClosure, value: true)
                            .connect(host: "127.0.0.1", port: port)
                            .flatMapThrowing { outbound in
                                let (a, b) = ByteRelay.pair()
                                try inbound.pipeline.syncOperations.addHandler(a)
                                try outbound.pipeline.syncOperations.addHandler(b)
                            }
                            .flatMapErrorThrowing { _ in inbound.close(promise: nil) }
                    }
                )
                return inbound.eventLoop.makeCompletedFuture { try inbound.pipeline.syncOperations.addHandler(sni) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.state = state
        port = channel.localAddress!.port!
    }

    /// Connections with `sni` go to 127.0.0.1:`port`.
    public func route(_ sni: String, to port: Int) {
        state.withLockedValue { $0.routes[sni] = port }
    }

    /// The SNIs seen, in order (empty text for a ClientHello without one).
    public var snis: [String] { state.withLockedValue { $0.snis } }
    public var connectionCount: Int { state.withLockedValue { $0.connections } }

    public func shutdown() async {
        try? await channel.close()
    }
}

/// Copies bytes between two channels on one event loop; a FIN on one becomes a FIN on the other.
final class ByteRelay: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: both ends run on the same event loop.
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: ByteRelay?
    private var context: ChannelHandlerContext?
    private var inputEnded = false

    static func pair() -> (ByteRelay, ByteRelay) {
        let (a, b) = (ByteRelay(), ByteRelay())
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { partner = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.writeAndFlush(data, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else { return context.fireUserInboundEventTriggered(event) }
        inputEnded = true
        if partner?.inputEnded == true {
            context.close(promise: nil)
            partner?.context?.close(promise: nil)
        } else {
            partner?.context?.close(mode: .output, promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import X509

/// A mesh service's sidecar stand-in on 127.0.0.1: TLS presenting `leaf`, a client certificate
/// required and verified against `clientRoots`. It echoes what it reads; when the client
/// half-closes it writes `bye\n` and closes. It records each client certificate's URI SANs.
public final class MeshUpstreamServer: Sendable {
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>
    public let port: Int

    struct State {
        var handshakes = 0
        var clientURIs: [[String]] = []
        var clientSerials: [String] = []
        var bytesReceived = 0
    }

    public init(leaf: TestLeaf, clientRoots: [TestCA], group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        var configuration = try leaf.serverTLSConfiguration()
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(try clientRoots.map { try $0.nioCertificate })
        let context = try NIOSSLContext(configuration: configuration)
        let state = NIOLockedValueBox(State())
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(NIOSSLServerHandler(context: context), EchoUntilEnd(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.state = state
        port = channel.localAddress!.port!
    }

    /// Completed TLS handshakes (each a connection a client dialled).
    public var handshakes: Int { state.withLockedValue { $0.handshakes } }
    /// The URI SANs of each handshake's client certificate.
    public var clientURIs: [[String]] { state.withLockedValue { $0.clientURIs } }
    /// The serial number of each handshake's client certificate.
    public var clientSerials: [String] { state.withLockedValue { $0.clientSerials } }
    public var bytesReceived: Int { state.withLockedValue { $0.bytesReceived } }

    public func shutdown() async {
        try? await channel.close()
    }

    final class EchoUntilEnd: ChannelInboundHandler, @unchecked Sendable {
        // @unchecked: used on its channel's event loop only.
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let state: NIOLockedValueBox<State>

        init(state: NIOLockedValueBox<State>) { self.state = state }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            switch event {
            case TLSUserEvent.handshakeCompleted:
                let peer = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
                var uris: [String] = []
                var serial = ""
                if let peer, let certificate = try? Certificate(derEncoded: try peer.toDERBytes()) {
                    serial = certificate.serialNumber.description
                    for case .uniformResourceIdentifier(let uri) in (try? certificate.extensions.subjectAlternativeNames) ?? SubjectAlternativeNames() { uris.append(uri) }
                }
                state.withLockedValue {
                    $0.handshakes += 1
                    $0.clientURIs.append(uris)
                    $0.clientSerials.append(serial)
                }
            case ChannelEvent.inputClosed:
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "bye\n"))).whenComplete { _ in context.close(promise: nil) }
            default:
                context.fireUserInboundEventTriggered(event)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            state.withLockedValue { $0.bytesReceived += buffer.readableBytes }
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}

import Logging
import MeshIdentity
import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind the TLS handler of a tunnel being dialled: completes `verified` once the handshake
/// is done and the peer's leaf carries the upstream's SPIFFE ID (consul-lambda.md B.6), fails it
/// otherwise. Then holds what the peer sends until the relay is attached (a spare may wait a while,
/// and a server-speaks-first protocol sends before the function does), and hands it over in order.
final class TunnelStart: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum State {
        case handshaking
        case verified(held: [ByteBuffer], inputEnded: Bool)
        case failed
    }

    private var state = State.handshaking
    private let expected: SPIFFEID
    private let verified: EventLoopPromise<Void>

    init(expected: SPIFFEID, verified: EventLoopPromise<Void>) {
        self.expected = expected
        self.verified = verified
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch (state, event) {
        case (.handshaking, TLSUserEvent.handshakeCompleted):
            let peer = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
            guard let peer else { return fail(context, TunnelError("the peer presented no certificate")) }
            if let mismatch = TunnelTLS.checkPeer(peer, expected: expected) {
                return fail(context, TunnelError(mismatch))
            }
            state = .verified(held: [], inputEnded: false)
            verified.succeed()
        case (.verified(let held, _), ChannelEvent.inputClosed):
            state = .verified(held: held, inputEnded: true)
        case (.handshaking, ChannelEvent.inputClosed):
            fail(context, TunnelError("the mesh gateway closed the connection during the TLS handshake"))
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .verified(var held, let ended) = state {
            held.append(unwrapInboundIn(data))
            state = .verified(held: held, inputEnded: ended)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch state {
        case .handshaking: fail(context, TunnelError("TLS with the mesh gateway failed: \(error)"))
        case .verified, .failed: context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .handshaking = state { fail(context, TunnelError("the mesh gateway closed the connection during the TLS handshake")) }
        context.fireChannelInactive()
    }

    /// Leaves the pipeline, first passing on what it held to the handler behind it (the relay).
    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if case .verified(let held, let ended) = state {
            state = .verified(held: [], inputEnded: false)
            for buffer in held { context.fireChannelRead(wrapInboundOut(buffer)) }
            if !held.isEmpty { context.fireChannelReadComplete() }
            if ended { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        }
        context.leavePipeline(removalToken: removalToken)
    }

    private func fail(_ context: ChannelHandlerContext, _ error: TunnelError) {
        guard case .handshaking = state else { return }
        state = .failed
        verified.fail(error)
        context.close(promise: nil)
    }
}

/// Why a tunnel could not be opened.
struct TunnelError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

import Logging
import MeshIdentity
import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind the TLS handler of a tunnel being dialled: completes `verified` once the handshake
/// is done and the peer's leaf carries the upstream's SPIFFE ID (docs/DECISIONS.md D62), fails it
/// otherwise. Then stops reading (a spare may wait a while: what its peer sends stays in the socket,
/// not in memory), holds what was already read (a server-speaks-first protocol sends before the
/// function does) until the relay is attached, and hands it over in order. A connection whose peer
/// ends it before it is used (a spare closed by an idle timeout or a restart) is closed, so that no
/// function gets a dead tunnel.
final class TunnelStart: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum State {
        case handshaking
        case verified(held: [ByteBuffer])
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
            state = .verified(held: [])
            context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
            verified.succeed()
        case (.verified, ChannelEvent.inputClosed):
            // Unused and ended by its peer: of no use to anyone.
            state = .failed
            context.close(promise: nil)
        case (.handshaking, ChannelEvent.inputClosed):
            fail(context, TunnelError("the mesh gateway closed the connection during the TLS handshake"))
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .verified(var held) = state {
            held.append(unwrapInboundIn(data))
            state = .verified(held: held)
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
        if case .verified(let held) = state {
            state = .verified(held: [])
            for buffer in held { context.fireChannelRead(wrapInboundOut(buffer)) }
            if !held.isEmpty { context.fireChannelReadComplete() }
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

import NIOCore
import NIOSSL

/// One end of a tunnel's relay (consul-lambda.md B.6): what one channel reads, its partner writes,
/// with back-pressure (a side reads only while its partner can take writes). A half-close is passed
/// on: the function's FIN becomes the TLS side's `close_notify` and the peer's `close_notify` (or
/// FIN) becomes a FIN to the function; both channels close once both directions are finished, or
/// at once on an error. Both channels must run on the same event loop (`partner` is then safe).
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// This side's input ended (its peer half-closed).
    private(set) var inputEnded = false
    /// Called once, with an error when the relay ended on one.
    private let onEnd: (Error?) -> Void
    private var ended = false

    private init(onEnd: @escaping (Error?) -> Void) {
        self.onEnd = onEnd
    }

    /// A joined pair: the first goes into the local channel, the second into the tunnel's.
    static func pair(onEnd: @escaping (Error?) -> Void) -> (RelayHandler, RelayHandler) {
        let first = RelayHandler(onEnd: onEnd)
        let second = RelayHandler(onEnd: { _ in })
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.write(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            inputEnded = true
            if partner?.inputEnded == true {
                finish(nil)
            } else {
                partner?.context?.close(mode: .output, promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A TLS peer that ends without close_notify (a TCP FIN) is an end of input, as its
        // inputClosed that follows says; not a reason to cut the other direction.
        if case .uncleanShutdown? = error as? NIOSSLError { return }
        finish(error)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? true {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private func write(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    /// Both channels closed, `onEnd` told once (by whichever side ends first).
    private func finish(_ error: Error?) {
        guard !ended else { return }
        ended = true
        let partner = self.partner
        partner?.ended = true
        context?.close(promise: nil)
        partner?.context?.close(promise: nil)
        onEnd(error)
        partner?.onEnd(error)
    }
}

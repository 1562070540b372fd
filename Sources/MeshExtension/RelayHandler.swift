import NIOCore
import NIOSSL

/// One end of a tunnel's relay (docs/ARCHITECTURE.md, The other components): what one channel reads, its partner writes,
/// with back-pressure (a side reads only while its partner can take writes). A half-close is passed
/// on: the function's FIN becomes the TLS side's `close_notify` and the peer's `close_notify`
/// becomes a FIN to the function, each after what was written before it. Once both directions are
/// finished (or one channel is gone) each side closes after its pending writes are out: an answer
/// is never cut short. An error (a bad record, a failed write) ends both at once. A TLS peer that
/// ends with a TCP FIN and no `close_notify` counts as an end of input, as curl and browsers take it
/// (many servers skip `close_notify`, and NIO reports a peer's reset the same way): a protocol that
/// ends at EOF, rather than framing its messages, cannot tell such a cut from the end.
/// Both channels must run on the same event loop (`partner` is then safe).
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// This side's input ended (its peer half-closed).
    private(set) var inputEnded = false
    /// When this side's output was closed on request (a half-close passed on): done once the
    /// writes before it are out.
    private var outputClosed: EventLoopFuture<Void>?
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
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else { return context.fireUserInboundEventTriggered(event) }
        inputEnded = true
        guard let partner, partner.context != nil else { return finish(nil) }
        partner.closeOutput()
        if partner.inputEnded { finish(nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // No close_notify: an end of input (the inputClosed that follows), not an error.
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

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    /// Passes a half-close on once the writes before it are out: the close waits for an empty
    /// write queued behind them (writes complete in order). Asked at once, with the function's
    /// socket full, NIO failed the writes still queued with `outputClosed` (RelayEdgeTests).
    private func closeOutput() {
        guard let context, outputClosed == nil else { return }
        let promise = context.eventLoop.makePromise(of: Void.self)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in
            bound.value.close(mode: .output, promise: promise)
        }
        outputClosed = promise.futureResult
    }

    /// Closes this side once what was written to it is out: its output first (`closeOutput`), then
    /// the channel.
    private func closeWhenWritten() {
        guard let context else { return }
        let channel = context.channel
        closeOutput()
        (outputClosed ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Closes this side at once.
    private func abort() {
        context?.close(promise: nil)
    }

    /// Both sides closed, `onEnd` told once (by whichever side ends first): after their pending
    /// writes on a clean end, at once on an error.
    private func finish(_ error: Error?) {
        guard !ended else { return }
        ended = true
        let partner = self.partner
        partner?.ended = true
        if error == nil {
            closeWhenWritten()
            partner?.closeWhenWritten()
        } else {
            abort()
            partner?.abort()
        }
        onEnd(error)
        partner?.onEnd(error)
    }
}

import NIOCore

/// The first handler of a client connection, next to the socket (below TLS). It counts the bytes
/// handed to the socket, so `ConnectionOutput` can tell whether the client reads, and it keeps the
/// connection's idle timeout: when nothing was read or written for `idleTimeout`, it fires NIO's
/// `IdleStateHandler.IdleStateEvent.all` up the pipeline (again each `idleTimeout` while idle),
/// which the HTTP handlers act on.
///
/// It takes the place of an `IdleStateHandler` behind TLS, which every read, write and flush of a
/// request passed through, and which gave each write a promise to time its completion. Here a read
/// or a write only sets a flag; a timer ticks four times per `idleTimeout` and counts the ticks
/// that found no flag, so the timeout fires between one and one and a quarter `idleTimeout`s after
/// the last activity, and no request reads the clock for it.
final class SocketActivity: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: used on the channel's event loop only.
    typealias InboundIn = NIOAny
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
    private(set) var handedDown = 0
    private var context: ChannelHandlerContext?
    private let idleTimeout: TimeAmount?
    /// A read or a write since the last tick.
    private var active = true
    /// Ticks in a row that found no activity.
    private var quietTicks = 0
    private var tick: Scheduled<Void>?
    static let ticksPerTimeout = 4

    /// `idleTimeout`: nil for none (tests of other concerns).
    init(idleTimeout: TimeAmount? = nil) {
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { scheduleTick(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        tick?.cancel()
        tick = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if tick == nil { scheduleTick(context: context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tick?.cancel()
        tick = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        active = true
        context.fireChannelRead(data)
    }

    /// Set when the connection's answers are confirmed by the socket's drain
    /// (`ConnectionOutput.confirmsAnswersByDrain`): called when no byte waits for the socket any more.
    var drained: (() -> Void)?

    /// With `drained` set, the water marks are at one byte and writability says only whether bytes
    /// wait for the socket: the events end here.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        guard let drained else {
            context.fireChannelWritabilityChanged()
            return
        }
        if context.channel.isWritable { drained() }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        handedDown &+= unwrapOutboundIn(data).readableBytes
        active = true
        context.write(data, promise: promise)
    }

    /// Closes the TCP connection at once, from below TLS.
    func closeSocket() {
        context?.close(promise: nil)
    }

    private func scheduleTick(context: ChannelHandlerContext) {
        guard let idleTimeout else { return }
        let interval = TimeAmount.nanoseconds(max(idleTimeout.nanoseconds / Int64(Self.ticksPerTimeout), 1))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        tick = context.eventLoop.scheduleTask(in: interval) {
            let (handler, context) = loopBound.value
            handler.tick = nil
            handler.ticked(context: context)
        }
    }

    private func ticked(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        if active {
            active = false
            quietTicks = 0
        } else {
            quietTicks += 1
            if quietTicks >= Self.ticksPerTimeout {
                quietTicks = 0
                context.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
            }
        }
        if self.context != nil, tick == nil { scheduleTick(context: context) }
    }
}

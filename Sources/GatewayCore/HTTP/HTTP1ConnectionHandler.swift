import LambdaPayload
import NIOCore
import NIOHTTP1

/// An HTTP/1.x connection (mesh-identity.md §9.2): keep-alive, requests answered in order, each
/// answer written as one buffer.
///
/// It stands in for NIO's `HTTPServerPipelineHandler`, `HTTPResponseEncoder`, response-header
/// validator and protocol-error handler. Those cost four handler passes for each of the three parts
/// of every answer, and the pipelining handler switched read interest off and on around each
/// request (two `epoll_ctl` calls). Here reading stops only while a pipelined request waits behind
/// the one in flight.
final class HTTP1ConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: all state is touched on the channel's event loop only; the processing task hops back.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let processor: RequestProcessor
    private let connection: ClientConnection
    private var reader: RequestReader
    /// The request being answered; parts that arrive meanwhile wait in `queued`.
    private var inFlight: HTTPRequestHead?
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// A `read()` held back while a pipelined request waits.
    private var readHeld = false
    /// Draining (`ChannelShouldQuiesceEvent`): close once the request in flight is answered.
    private var closeAfterAnswer = false
    private var closing = false

    init(processor: RequestProcessor, connection: ClientConnection, limit: Int) {
        self.processor = processor
        self.connection = connection
        self.reader = RequestReader(limit: limit)
    }

    /// Between requests: nothing in flight, nothing half read, nothing queued.
    private var isIdle: Bool { inFlight == nil && reader.isIdle && queued.isEmpty }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard !closing else { return }
        if inFlight != nil || !queued.isEmpty {
            queued.append(part)
            return
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch reader.receive(part, processor: processor, connection: connection) {
        case .none:
            break
        case .refuse(let answer, let head, let close):
            processor.answered(answer, connection: connection)
            write(answer.response, for: head, close: close || closeAfterAnswer || !head.isKeepAlive, context: context)
        case .sendContinue(let head):
            var buffer = context.channel.allocator.buffer(capacity: 32)
            HTTP1ResponseEncoder.writeContinue(version: head.version, into: &buffer)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case .process(let head, let request):
            inFlight = head
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            processor.process(request, connection: connection, answeringOn: context.eventLoop).whenSuccess { response in
                let (handler, context) = loopBound.value
                handler.answered(response, for: head, context: context)
            }
        }
    }

    private func answered(_ response: LambdaHTTPResponse, for head: HTTPRequestHead, context: ChannelHandlerContext) {
        inFlight = nil
        guard !closing else { return }
        write(response, for: head, close: closeAfterAnswer || !head.isKeepAlive, context: context)
        // Pipelined requests, in order, until one is in flight again.
        while inFlight == nil, !closing, let next = queued.popFirst() {
            handle(next, context: context)
        }
        if queued.isEmpty && readHeld && !closing {
            readHeld = false
            context.read()
        }
    }

    private func write(_ response: LambdaHTTPResponse, for head: HTTPRequestHead, close: Bool, context: ChannelHandlerContext) {
        let (bytes, largeBody) = HTTP1ResponseEncoder.encode(response, version: head.version, bodyless: head.method == .HEAD, close: close, allocator: context.channel.allocator)
        if let largeBody { context.write(wrapOutboundOut(bytes), promise: nil) }
        let written = context.writeAndFlush(wrapOutboundOut(largeBody ?? bytes))
        if close {
            closing = true
            written.whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Reading pauses while a pipelined request waits behind the one in flight, so a client cannot
    /// queue requests without bound; otherwise it never stops.
    func read(context: ChannelHandlerContext) {
        if queued.isEmpty {
            context.read()
        } else {
            readHeld = true
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is IdleStateHandler.IdleStateEvent:
            // The connection's idle timeout: close between requests only, never while one waits.
            if isIdle { context.close(promise: nil) }
        case is ChannelShouldQuiesceEvent:
            // Draining: an idle connection closes now, a busy one after its answer (`connection: close`).
            if isIdle {
                closing = true
                context.close(promise: nil)
            } else {
                closeAfterAnswer = true
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// A request that cannot be parsed: headers over the limits get 431, anything else 400, and the
    /// connection closes (the decoder cannot go on).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if !closing && inFlight == nil {
            let status = parserError == .headerOverflow ? 431 : 400
            var buffer = context.channel.allocator.buffer(capacity: 64)
            HTTP1ResponseEncoder.writeBare(status: status, into: &buffer)
            closing = true
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
        } else {
            closing = true
            context.close(promise: nil)
        }
    }
}

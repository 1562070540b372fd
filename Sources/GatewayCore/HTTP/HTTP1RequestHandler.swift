import LambdaPayload
import NIOCore
import NIOHTTP1
import NIOHTTP2

/// One request on an HTTP/2 stream, behind NIO's frame-to-HTTP/1 codec: read it (`RequestReader`),
/// process it, write the answer as HTTP/1-style parts.
///
/// A stream whose body pauses longer than the body timeout is answered 408 without a Lambda call;
/// a request that arrives while the connection's answers wait unread (`ConnectionOutput`) is
/// refused with RST_STREAM(REFUSED_STREAM): no Lambda call, nothing written that the client would
/// have to read (a client may retry a refused stream), so a client that does not read cannot make
/// the gateway hold more.
final class HTTP1RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: all state is touched on the channel's event loop only; the processing task hops back.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let processor: RequestProcessor
    private let connection: ClientConnection
    private let output: ConnectionOutput
    private var reader: RequestReader
    /// Answered before a request could be read (an error of the stream's codec, a timeout).
    private var answeredEarly = false
    private let bodyTimer: QuietTimer
    /// This stream's request, from its first frame.
    private var exchange = RequestExchange()

    init(processor: RequestProcessor, connection: ClientConnection, output: ConnectionOutput, limit: Int) {
        self.processor = processor
        self.connection = connection
        self.output = output
        self.reader = RequestReader(limit: limit)
        self.bodyTimer = QuietTimer(timeout: TimeAmount(processor.settings.clientBodyTimeout))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        bodyTimer.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answeredEarly else { return }
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            exchange.started = .now()
            exchange.head = head
        case .body(let body): exchange.requestBodyBytes += body.readableBytes
        case .end: break
        }
        switch reader.receive(part, processor: processor, connection: connection) {
        case .none:
            break
        case .refuse(let answer, let head, let close):
            respond(answer, head: head, context: context, close: close)
        case .sendContinue(let head):
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        case .process(let head, let request):
            bodyTimer.cancel()
            if output.budget.isSpent {
                refuseStream(context: context)
                return
            }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            processor.process(request, connection: connection, budget: output.budget, answeringOn: context.eventLoop).whenSuccess { processed in
                let (handler, context) = loopBound.value
                handler.respond(processed.answer, head: head, context: context, close: false, handingOver: processed.heldBytes)
            }
        }
    }

    /// RST_STREAM(REFUSED_STREAM), written below the HTTP/1 codec (it only takes HTTP parts);
    /// counted as a 503 refusal.
    private func refuseStream(context: ChannelHandlerContext) {
        answeredEarly = true
        processor.ended(exchange, answer: .rejected(status: 503, code: "ConnectionBusy", message: ""), responseBodyBytes: 0, written: true, connection: connection)
        if let codec = try? context.pipeline.syncOperations.context(handlerType: HTTP2FramePayloadToHTTP1ServerCodec.self) {
            codec.writeAndFlush(NIOAny(HTTP2Frame.FramePayload.rstStream(.refusedStream)), promise: nil)
        } else {
            context.close(promise: nil)
        }
    }

    /// The client opened this stream's window: its answer moves again.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { output.streamBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    /// A body still arriving after a read keeps the body timer.
    func channelReadComplete(context: ChannelHandlerContext) {
        guard reader.isReadingBody, !answeredEarly else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        bodyTimer.touch(on: context.eventLoop) {
            let (handler, context) = loopBound.value
            guard handler.reader.isReadingBody, !handler.answeredEarly else { return }
            handler.processor.metrics.connectionClosed(.clientBodyTimeout)
            handler.answerEarly(status: 408, code: "RequestTimeout", message: "the request body paused for longer than the body timeout", context: context)
        }
    }

    /// A stream whose frames cannot become a request (a header block without `:authority`, a
    /// bad pseudo-header) gets 400 at once, as HTTP/1.1's parser errors do, instead of waiting
    /// for a request that will never come.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The client reset the stream: nobody to answer.
        if error is NIOHTTP2Errors.StreamClosed { return }
        answerEarly(status: 400, code: "MalformedRequest", message: "the stream's headers are not a valid request: \(LogSafe.text("\(error)", limit: 128))", context: context)
    }

    private func answerEarly(status: Int, code: String, message: String, context: ChannelHandlerContext) {
        guard !answeredEarly else { return }
        answeredEarly = true
        bodyTimer.cancel()
        let answer = RequestProcessor.Answer.rejected(status: status, code: code, message: message)
        respond(answer, head: exchange.head ?? HTTPRequestHead(version: .http2, method: .GET, uri: "/"), context: context, close: true)
    }

    private func respond(_ answer: RequestProcessor.Answer, head: HTTPRequestHead, context: ChannelHandlerContext, close: Bool, handingOver held: Int = 0) {
        let response = answer.response
        var headers = HTTPHeaders()
        headers.reserveCapacity(response.headers.count + 2)
        for field in response.headers { headers.add(name: field.name, value: field.value) }
        headers.replaceOrAdd(name: "content-length", value: String(response.body.readableBytes))
        let responseHead = HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        let sendsBody = response.body.readableBytes > 0 && head.method != .HEAD
        if sendsBody {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        var exchange = self.exchange
        exchange.responded = .now()
        let bodyBytes = sendsBody ? response.body.readableBytes : 0
        // Before the close below: the request is counted before the client can see the stream end.
        output.writing(bodyBytes, done: done, handingOver: held) { [self] written in
            processor.ended(exchange, answer: answer, responseBodyBytes: bodyBytes, written: written, connection: connection)
        }
        if close {
            done.whenComplete { _ in context.close(promise: nil) }
        }
    }
}

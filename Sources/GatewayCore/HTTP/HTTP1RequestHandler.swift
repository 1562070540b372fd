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
    /// A streamed answer being relayed, after its head: the answer, its body bytes so far, and
    /// whether every write reached the connection.
    private var relay: (stream: ResponseStream, answer: RequestProcessor.Answer, bodyBytes: Int, written: Bool)?
    /// The request being processed, cancelled if the stream closes (the client reset it, or the
    /// connection went away) before its answer.
    private var inFlight: RequestCancellation?

    init(processor: RequestProcessor, connection: ClientConnection, output: ConnectionOutput, limit: Int) {
        self.processor = processor
        self.connection = connection
        self.output = output
        self.reader = RequestReader(limit: limit)
        self.bodyTimer = QuietTimer(timeout: TimeAmount(processor.settings.clientBodyTimeout))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        bodyTimer.cancel()
        inFlight?.cancel()
        inFlight = nil
        abandonRelay()
    }

    /// The client reset the stream, or the connection went away, before or during the answer.
    func channelInactive(context: ChannelHandlerContext) {
        inFlight?.cancel()
        inFlight = nil
        abandonRelay()
        context.fireChannelInactive()
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
            let cancellation = RequestCancellation()
            inFlight = cancellation
            processor.process(request, connection: connection, budget: output.budget, answeringOn: context.eventLoop, cancellation: cancellation).whenSuccess { processed in
                let (handler, context) = loopBound.value
                handler.inFlight = nil
                if let stream = processed.stream {
                    handler.relay(stream, answer: processed.answer, head: head, context: context)
                } else {
                    handler.respond(processed.answer, head: head, context: context, close: false, handingOver: processed.heldBytes)
                }
            }
        }
    }

    // MARK: Streamed answers

    /// A streamed answer: its head now, then DATA frames as its pieces arrive, then END_STREAM; a
    /// stream that breaks off is reset instead (RST_STREAM INTERNAL_ERROR), so it never looks complete.
    private func relay(_ stream: ResponseStream, answer: RequestProcessor.Answer, head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard context.channel.isActive else {
            stream.abandon()
            var answer = processor.streamEnded(answer, stream: stream, failure: nil, service: connection.serviceName)
            answer.streamed = .incomplete
            processor.ended(exchange, answer: answer, responseBodyBytes: 0, written: false, connection: connection)
            return
        }
        let headers = HTTPHeaders(answer.response.headers)
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: answer.response.status), headers: headers))), promise: nil)
        exchange.responded = .now()
        relay = (stream, answer, 0, true)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        stream.attach { part in
            let (handler, context) = loopBound.value
            handler.relayPart(part, context: context)
        }
    }

    private func relayPart(_ part: ResponseStream.Part, context: ChannelHandlerContext) {
        guard let current = relay else {
            if case .body(_, let held) = part, held > 0 { output.budget.release(held) }
            return
        }
        switch part {
        case .body(let piece, let held):
            guard piece.readableBytes > 0 else {
                if held > 0 { output.budget.release(held) }
                return
            }
            relay?.bodyBytes += piece.readableBytes
            let written = context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(piece))))
            output.writing(piece.readableBytes, done: written, handingOver: held) { [self] ok in
                if !ok { relay?.written = false }
            }
        case .end(let failure?):
            relay = nil
            let answer = processor.streamEnded(current.answer, stream: current.stream, failure: failure, service: connection.serviceName)
            processor.ended(exchange, answer: answer, responseBodyBytes: current.bodyBytes, written: current.written, connection: connection)
            resetStream(.internalError, context: context)
        case .end(nil):
            relay = nil
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            let exchange = self.exchange
            output.writing(0, done: done) { [self] ok in
                var answer = processor.streamEnded(current.answer, stream: current.stream, failure: nil, service: connection.serviceName)
                if !(ok && current.written) { answer.streamed = .incomplete }
                processor.ended(exchange, answer: answer, responseBodyBytes: current.bodyBytes, written: ok && current.written, connection: connection)
            }
        }
    }

    private func abandonRelay() {
        guard let current = relay else { return }
        relay = nil
        current.stream.abandon()
        var answer = processor.streamEnded(current.answer, stream: current.stream, failure: nil, service: connection.serviceName)
        answer.streamed = .incomplete
        processor.ended(exchange, answer: answer, responseBodyBytes: current.bodyBytes, written: false, connection: connection)
    }

    /// RST_STREAM with `code`, written below the HTTP/1 codec (it only takes HTTP parts).
    private func resetStream(_ code: HTTP2ErrorCode, context: ChannelHandlerContext) {
        if let codec = try? context.pipeline.syncOperations.context(handlerType: HTTP2FramePayloadToHTTP1ServerCodec.self) {
            codec.writeAndFlush(NIOAny(HTTP2Frame.FramePayload.rstStream(code)), promise: nil)
        } else {
            context.close(promise: nil)
        }
    }

    /// RST_STREAM(REFUSED_STREAM), written below the HTTP/1 codec (it only takes HTTP parts);
    /// counted as a 503 refusal.
    private func refuseStream(context: ChannelHandlerContext) {
        answeredEarly = true
        processor.ended(exchange, answer: .rejected(status: 503, code: "ConnectionBusy", message: ""), responseBodyBytes: 0, written: true, connection: connection)
        resetStream(.refusedStream, context: context)
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
        var headers = HTTPHeaders(response.headers, reservingExtra: 2)
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

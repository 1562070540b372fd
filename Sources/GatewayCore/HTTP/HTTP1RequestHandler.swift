import LambdaPayload
import NIOCore
import NIOHTTP1

/// One request on an HTTP/2 stream, behind NIO's frame-to-HTTP/1 codec: read it (`RequestReader`),
/// process it, write the answer as HTTP/1-style parts.
final class HTTP1RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: all state is touched on the channel's event loop only; the processing task hops back.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let processor: RequestProcessor
    private let connection: ClientConnection
    private var reader: RequestReader

    init(processor: RequestProcessor, connection: ClientConnection, limit: Int) {
        self.processor = processor
        self.connection = connection
        self.reader = RequestReader(limit: limit)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch reader.receive(unwrapInboundIn(data), processor: processor, connection: connection) {
        case .none:
            break
        case .refuse(let answer, let head, let close):
            processor.answered(answer, connection: connection)
            respond(answer.response, head: head, context: context, close: close)
        case .sendContinue(let head):
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        case .process(let head, let request):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            processor.process(request, connection: connection, answeringOn: context.eventLoop).whenSuccess { response in
                let (handler, context) = loopBound.value
                handler.respond(response, head: head, context: context, close: false)
            }
        }
    }

    private func respond(_ response: LambdaHTTPResponse, head: HTTPRequestHead, context: ChannelHandlerContext, close: Bool) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(response.headers.count + 2)
        for field in response.headers { headers.add(name: field.name, value: field.value) }
        headers.replaceOrAdd(name: "content-length", value: String(response.body.readableBytes))
        let responseHead = HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if response.body.readableBytes > 0 && head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            done.whenComplete { _ in context.close(promise: nil) }
        }
    }
}

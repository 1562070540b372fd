import LambdaPayload
import NIOCore
import NIOHTTP1

/// HTTP/1.1 on an authenticated mesh connection (mesh-identity.md §9.2): keep-alive, requests answered
/// in order (NIO's pipelining assistance holds the next one back), bodies bounded by the Lambda limit.
final class HTTP1RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: all state is touched on the channel's event loop only; the processing task hops back.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case reading(HTTPRequestHead, ByteBuffer)
        /// The body is over the limit: discard the rest, answer 413, close.
        case discarding(HTTPRequestHead)
        case processing
    }

    private let processor: RequestProcessor
    private let connection: ClientConnection
    private let limit: Int
    private var state = State.idle

    init(processor: RequestProcessor, connection: ClientConnection, limit: Int) {
        self.processor = processor
        self.connection = connection
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            if head.method == .CONNECT {
                refuse(.rejected(.error(status: 405, code: "MethodNotAllowed", message: "CONNECT is not supported")), head: head, context: context, close: false)
                return
            }
            if head.version.minor >= 1 && !head.headers.contains(name: "host") {
                refuse(.rejected(.error(status: 400, code: "MissingHost", message: "HTTP/1.1 requests need a Host header")), head: head, context: context)
                return
            }
            if head.version.major == 2 && head.headers.count > HTTPProtocolErrorResponder.limits.maxHeaderFieldCount {
                // HTTP/1.1's decoder counts fields itself; HTTP/2 bounds only their total size.
                refuse(.rejected(.error(status: 431, code: "RequestHeaderFieldsTooLarge", message: "more than \(HTTPProtocolErrorResponder.limits.maxHeaderFieldCount) request header fields")), head: head, context: context)
                return
            }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limit {
                // Over the limit: answer at once, without reading the body (lambda.md §7.1).
                refuse(.rejected(.error(status: 413, code: "RequestTooLarge", message: "the request body is over the \(limit)-byte limit")), head: head, context: context)
                return
            }
            if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                // The client waits for a go-ahead before sending the body: give it only once the
                // head passes the checks that do not need the body (mesh-identity.md §9.2).
                if case .refused(let answer) = processor.admit(method: head.method.rawValue, target: head.uri, headers: Self.fields(head.headers), connection: connection) {
                    refuse(answer, head: head, context: context)
                    return
                }
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            state = .reading(head, context.channel.allocator.buffer(capacity: 0))
        case (.body(var chunk), .reading(let head, var body)):
            if body.readableBytes + chunk.readableBytes > limit {
                refuse(.rejected(.error(status: 413, code: "RequestTooLarge", message: "the request body is over the \(limit)-byte limit")), head: head, context: context)
                return
            }
            state = .processing  // drop the reference while appending, to avoid a copy
            body.writeBuffer(&chunk)
            state = .reading(head, body)
        case (.end, .reading(let head, let body)):
            state = .processing
            let request = GatewayRequest(
                method: head.method.rawValue,
                target: head.uri,
                headers: Self.fields(head.headers),
                body: body,
                protocolName: "HTTP/\(head.version.major).\(head.version.minor)"
            )
            let processor = self.processor
            let connection = self.connection
            let promise = context.eventLoop.makePromise(of: LambdaHTTPResponse.self)
            promise.completeWithTask { await processor.process(request, connection: connection) }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            promise.futureResult.whenSuccess { response in
                let (handler, context) = loopBound.value
                handler.respond(response, head: head, context: context, close: !head.isKeepAlive)
                handler.state = .idle
            }
        case (.end, .discarding):
            state = .idle
        case (.body, .discarding), (.end, .idle), (.body, .idle), (.end, .processing), (.body, .processing), (.head, _):
            break
        }
    }

    /// The connection's idle timeout (an `IdleStateHandler` in front): close between requests only.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if case .idle = state { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    static func fields(_ headers: HTTPHeaders) -> [HTTPField] {
        headers.map { HTTPField($0.name, $0.value) }
    }

    /// Answers before the request is complete: counts the answer, discards the rest of the request
    /// and (by default) closes, since the client may still be sending a body.
    private func refuse(_ answer: RequestProcessor.Answer, head: HTTPRequestHead, context: ChannelHandlerContext, close: Bool = true) {
        processor.answered(answer, connection: connection)
        respond(answer.response, head: head, context: context, close: close)
        state = .discarding(head)
    }

    private func respond(_ response: LambdaHTTPResponse, head: HTTPRequestHead, context: ChannelHandlerContext, close: Bool) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(response.headers.count + 2)
        for field in response.headers { headers.add(name: field.name, value: field.value) }
        headers.replaceOrAdd(name: "content-length", value: String(response.body.readableBytes))
        if close { headers.replaceOrAdd(name: "connection", value: "close") }
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

import NIOCore
import NIOHTTP1

/// Answers a request that cannot be parsed before the connection closes (mesh-identity.md §9.2):
/// headers over the limits → 431, anything else malformed → 400. NIO's own
/// `HTTPServerProtocolErrorHandler` answers 400 to both.
final class HTTPProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: used on the channel's event loop only.
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Envoy's defaults: 60 KiB of request headers in all, at most 100 fields.
    static let limits: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 60 * 1024
        limits.maxHeaderListSize = 60 * 1024
        limits.maxHeaderFieldCount = 100
        return limits
    }()

    /// A response has started and not ended: no second one can be written.
    private var responseInProgress = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // The decoder closes the connection right after this returns; answer first if we can.
        if !responseInProgress {
            let status: HTTPResponseStatus = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
            let headers = HTTPHeaders([("connection", "close"), ("content-length", "0")])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code < 200 && head.status != .switchingProtocols: break  // 1xx: more to come
        case .head: responseInProgress = true
        case .body: break
        case .end: responseInProgress = false
        }
        context.write(data, promise: promise)
    }
}

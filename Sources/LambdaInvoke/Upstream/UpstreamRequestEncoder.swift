import NIOCore
import NIOHTTP1

/// Writes an Invoke request as one buffer: `METHOD target HTTP/1.1`, the headers, a blank line, the
/// body. It takes the place of NIO's request encoder and request-header validator, which cost a
/// pass each per part and wrote head and body as separate buffers (so separate TLS records).
///
/// The gateway builds every field itself (no client header reaches AWS, lambda.md); a field that
/// could still break the framing (CR, LF or NUL) is left out, and AWS then refuses the request
/// rather than reading a second one.
final class UpstreamRequestEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = ByteBuffer

    private var head: HTTPRequestHead?
    private var body: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            self.head = head
            promise?.succeed()
        case .body(.byteBuffer(let chunk)):
            if body == nil { body = chunk } else { var chunk = chunk; body!.writeBuffer(&chunk) }
            promise?.succeed()
        case .body(.fileRegion):
            promise?.fail(ChannelError.operationUnsupported)
        case .end:
            guard let head else {
                promise?.fail(ChannelError.operationUnsupported)
                return
            }
            let buffer = Self.encode(head, body: body ?? ByteBuffer(), allocator: context.channel.allocator)
            self.head = nil
            self.body = nil
            context.write(wrapOutboundOut(buffer), promise: promise)
        }
    }

    static func encode(_ head: HTTPRequestHead, body: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var size = head.uri.utf8.count + 32 + body.readableBytes
        for (name, value) in head.headers { size += name.utf8.count + value.utf8.count + 4 }
        var buffer = allocator.buffer(capacity: size)
        buffer.writeString(head.method.rawValue)
        buffer.writeStaticString(" ")
        buffer.writeString(head.uri)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        for (name, value) in head.headers where isSafe(name) && isSafe(value) {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        var body = body
        buffer.writeBuffer(&body)
        return buffer
    }

    private static func isSafe(_ text: String) -> Bool {
        !text.utf8.contains { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") || $0 == 0 }
    }
}

import NIOCore
import NIOHTTP1

/// Writes an Invoke request as one buffer: `METHOD target HTTP/1.1`, the headers, a blank line, the
/// body (a body over 16 KiB follows as its own buffer, uncopied). It takes the place of NIO's request encoder and request-header validator, which cost a
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
            let body = self.body ?? ByteBuffer()
            self.head = nil
            self.body = nil
            if body.readableBytes <= Self.coalescedBodyLimit {
                context.write(wrapOutboundOut(Self.encode(head, body: body, allocator: context.channel.allocator)), promise: promise)
            } else {
                // A large payload (up to 6 MB) is not copied: the head, then the body as it is.
                context.write(wrapOutboundOut(Self.encode(head, body: ByteBuffer(), allocator: context.channel.allocator)), promise: nil)
                context.write(wrapOutboundOut(body), promise: promise)
            }
        }
    }

    /// A body up to this size is copied behind the head: one buffer, one TLS record.
    static let coalescedBodyLimit = 16 * 1024

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

    /// One pass over the contiguous bytes (a `utf8.contains` closure per byte cost more than the rest
    /// of the encoding).
    private static func isSafe(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            for byte in bytes where byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") || byte == 0 {
                return false
            }
            return true
        }
    }
}

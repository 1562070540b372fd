import LambdaPayload
import NIOCore
import NIOHTTP1

/// Writes an Invoke request as one buffer: `METHOD target HTTP/1.1`, the headers, a blank line, the
/// body (a body over 16 KiB follows as its own buffer, uncopied). It takes the place of NIO's request encoder and request-header validator, which cost a
/// pass each per part and wrote head and body as separate buffers (so separate TLS records).
///
/// The gateway builds every field itself (no client header reaches AWS: docs/DECISIONS.md D2); a field that
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
            if body == nil {
                body = chunk
            } else {
                var chunk = chunk
                body!.writeBuffer(&chunk)
            }
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

    /// The head is written into one reservation (a `ByteBuffer` call per piece cost some 250
    /// instructions each, 33 pieces per Invoke call), then the body behind it.
    static func encode(_ head: HTTPRequestHead, body: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var method = head.method.rawValue
        var uri = head.uri
        var size = method.utf8.count + uri.utf8.count + 14
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(head.headers.count)
        for (name, value) in head.headers where isSafe(name) && isSafe(value) {
            fields.append((name, value))
            size += name.utf8.count + value.utf8.count + 4
        }
        var buffer = allocator.buffer(capacity: size + body.readableBytes)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { output in
            var out = 0
            func put(_ text: inout String) {
                text.withUTF8 { bytes in
                    UnsafeMutableRawBufferPointer(rebasing: output[out...]).copyMemory(from: UnsafeRawBufferPointer(bytes))
                    out += bytes.count
                }
            }
            func put(_ first: UInt8, _ second: UInt8) {
                output[out] = first
                output[out + 1] = second
                out += 2
            }
            put(&method)
            output[out] = UInt8(ascii: " ")
            out += 1
            put(&uri)
            var version = " HTTP/1.1"
            put(&version)
            put(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            for index in fields.indices {
                put(&fields[index].name)
                put(UInt8(ascii: ":"), UInt8(ascii: " "))
                put(&fields[index].value)
                put(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            }
            put(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            return out
        }
        var body = body
        buffer.writeBuffer(&body)
        return buffer
    }

    /// One pass over the contiguous bytes, eight at a time: a word none of whose bytes is below 14
    /// (CR is 13, LF 10, NUL 0) is safe, and only a word with one (a tab, say) is looked at byte by
    /// byte. (A `utf8.contains` closure per byte cost more than the rest of the encoding; a branch
    /// per byte, some 2,800 instructions per Invoke call.)
    static func isSafe(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            let raw = UnsafeRawBufferPointer(bytes)
            var index = 0
            while index + 8 <= raw.count {
                let word = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if WordBytes.lanes(of: word, below: 14) != 0 {
                    for byte in raw[index..<index + 8] where isFraming(byte) { return false }
                }
                index += 8
            }
            for byte in raw[index...] where isFraming(byte) { return false }
            return true
        }
    }

    private static func isFraming(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") || byte == 0
    }
}

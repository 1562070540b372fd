import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2

/// What NIO's HTTP/2 server handler, its header validation on (its default), makes of a request's
/// header block and optionally its trailers: the yardstick the gateway's own field rules
/// (`HTTP2FieldRules`) are held to, by `HTTP2FieldRulesTests` and the `FuzzHTTP2Fields` target.
public enum NIOHTTP2Verdict {
    /// Whether NIO lets the request through on stream 1 (it hands its HEADERS frames on) rather than
    /// reset the stream as malformed. `trailers`: a body byte and then these trailers follow the
    /// head. Nil if NIO did neither, which would make the comparison meaningless.
    public static func accepts(head: [UInt8], trailers: [UInt8]? = nil) -> Bool? {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        try! channel.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server))
        try! channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var bytes = RawH2.start() + RawH2.frame(.headers, flags: 0x4 | (trailers == nil ? 0x1 : 0), stream: 1, head)
        if let trailers {
            bytes += RawH2.frame(.data, stream: 1, [0x61]) + RawH2.frame(.headers, flags: 0x5, stream: 1, trailers)
        }
        // NIO raises the stream's error through the pipeline as well as resetting the stream.
        _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
        // NIO's handler flushes what it wrote (a RST_STREAM) as the read completes.
        channel.pipeline.fireChannelReadComplete()
        var written: [UInt8] = []
        while let buffer = try? channel.readOutbound(as: ByteBuffer.self) { written += Array(buffer.readableBytesView) }
        let reset = RawH2.frames(in: written).contains {
            ($0.type == RawH2.FrameType.rstStream.rawValue && $0.stream == 1) || $0.type == RawH2.FrameType.goAway.rawValue
        }
        var headerBlocks = 0
        while let frame = try? channel.readInbound(as: HTTP2Frame.self) {
            if case .headers = frame.payload { headerBlocks += 1 }
        }
        let passed = headerBlocks == (trailers == nil ? 1 : 2)
        guard reset != passed else { return nil }
        return passed
    }

    /// A header block decoded as NIO's handler decodes it; nil if NIO's decoder refuses it.
    public static func headers(in block: [UInt8]) -> HPACKHeaders? {
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        var buffer = ByteBuffer(bytes: block)
        return try? decoder.decodeHeaders(from: &buffer)
    }
}

import NIOCore

/// The bytes a connection's parser has not consumed yet, kept from one read to the next: the start
/// of a head, say, or of a chunk's size line. Shared by the client and Lambda connection handlers.
public struct UnparsedBytes {
    private var kept: ByteBuffer?

    public init() {}

    /// What was kept, followed by `read`. It is taken out first, so that appending to it does not
    /// copy it.
    public mutating func joined(with read: ByteBuffer) -> ByteBuffer {
        guard var earlier = kept else { return read }
        kept = nil
        var read = read
        earlier.writeBuffer(&read)
        return earlier
    }

    /// Keeps what `buffer` has left to read, in storage of its own: never with the bytes parsed
    /// before them, which a buffer that kept growing in place would hold for the connection's life.
    public mutating func keep(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else {
            kept = nil
            return
        }
        var copy = ByteBufferAllocator().buffer(capacity: buffer.readableBytes)
        copy.writeImmutableBuffer(buffer)
        kept = copy
    }

    public mutating func clear() {
        kept = nil
    }

    /// The bytes kept (an empty buffer when none).
    public var bytes: ByteBuffer { kept ?? ByteBuffer() }

    /// The storage the kept bytes hold: at most their own size.
    public var capacity: Int { kept?.capacity ?? 0 }
}

import NIOCore

/// A string together with its JSON form (quoted and escaped), for a value that goes into many
/// payloads unchanged: a mesh connection's `x-forwarded-client-cert` element (some 3 KB of
/// percent-encoded certificates) is escaped once at the handshake instead of in every request.
/// A class, so that a header field that carries one copies one reference more, not a buffer.
public final class PreEscapedString: Sendable {
    public let text: String
    /// `"…"`, escaped as `JSONWriter` escapes any string.
    let json: ByteBuffer

    public init(_ text: String) {
        self.text = text
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count + 16)
        var copy = text
        copy.withUTF8 { JSONWriter.writeEscaped(UnsafeRawBufferPointer($0), to: &buffer) }
        self.json = buffer
    }
}

import Crypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// SHA-256 with a known opening already absorbed: a message that begins with `bytes` costs only the
/// blocks after them. Every Invoke payload of a mesh connection opens with the connection's
/// `x-forwarded-client-cert` element (some 3 KB of certificates, `RequestEncoder.lead`), which is
/// hashed once at the handshake instead of in every request's signature.
///
/// A message that does not begin with `bytes` (checked byte for byte) is hashed whole, so a prefix
/// never gives a wrong digest. Tested against `SHA256.hash`.
public final class SHA256Prefix: Sendable {
    public let bytes: [UInt8]
    private let state: SHA256

    public init(_ bytes: [UInt8]) {
        var state = SHA256()
        bytes.withUnsafeBytes { state.update(bufferPointer: $0) }
        self.bytes = bytes
        self.state = state
    }

    /// Whether `message` begins with `bytes`.
    public func isPrefix(of message: UnsafeRawBufferPointer) -> Bool {
        guard message.count >= bytes.count else { return false }
        guard let base = message.baseAddress, !bytes.isEmpty else { return true }
        return bytes.withUnsafeBytes { memcmp($0.baseAddress!, base, $0.count) == 0 }
    }

    /// SHA-256 of `message`: from the kept state when `message` begins with `bytes`, from scratch
    /// otherwise.
    public func hash(_ message: UnsafeRawBufferPointer) -> SHA256Digest {
        guard isPrefix(of: message) else {
            var whole = SHA256()
            whole.update(bufferPointer: message)
            return whole.finalize()
        }
        return hash(after: UnsafeRawBufferPointer(rebasing: message[bytes.count...]))
    }

    /// SHA-256 of `bytes` followed by `rest`, for a caller that writes only what follows them
    /// (`SigV4Template`'s canonical request).
    public func hash(after rest: UnsafeRawBufferPointer) -> SHA256Digest {
        state(after: rest).finalize()
    }

    /// The hash state after `bytes` and `rest`, for more bytes to follow.
    func state(after rest: UnsafeRawBufferPointer) -> SHA256 {
        var hash = state
        hash.update(bufferPointer: rest)
        return hash
    }
}

import Crypto

/// HMAC-SHA256 (RFC 2104) with its key already absorbed: the inner and outer hashes have each taken
/// their padded key block, so a MAC costs only the message's blocks and one outer block.
///
/// swift-crypto's `HMAC` keeps the same two states, but its `update` is generic over `DataProtocol`
/// and is not specialized across the module boundary (a metadata lookup per call, about a tenth of a
/// prepared signature). These hashes are fed through the non-generic `update(bufferPointer:)`.
/// Tested against `HMAC<SHA256>`.
struct PreparedHMAC: Sendable {
    private let inner: SHA256
    private let outer: SHA256

    static let blockSize = 64

    init(key: SymmetricKey) {
        // A key longer than a block is hashed first; SigV4's keys (32 bytes) never are.
        var block = [UInt8](repeating: 0, count: Self.blockSize)
        key.withUnsafeBytes { key in
            if key.count > Self.blockSize {
                SHA256.hash(data: key).withUnsafeBytes { digest in
                    block.withUnsafeMutableBytes { $0.copyMemory(from: digest) }
                }
            } else {
                block.withUnsafeMutableBytes { $0.copyMemory(from: key) }
            }
        }
        var inner = SHA256()
        var outer = SHA256()
        inner.update(data: block.map { $0 ^ 0x36 })
        outer.update(data: block.map { $0 ^ 0x5C })
        self.inner = inner
        self.outer = outer
    }

    /// The same key with the opening of every message to come absorbed: a MAC then costs only the
    /// blocks after it (`SignatureHeads`).
    func absorbing(_ opening: UnsafeRawBufferPointer) -> PreparedHMAC {
        var inner = self.inner
        inner.update(bufferPointer: opening)
        return PreparedHMAC(inner: inner, outer: outer)
    }

    private init(inner: SHA256, outer: SHA256) {
        self.inner = inner
        self.outer = outer
    }

    /// HMAC-SHA256 of `message` under the prepared key.
    func authenticationCode(for message: UnsafeRawBufferPointer) -> SHA256Digest {
        var inner = self.inner
        inner.update(bufferPointer: message)
        var outer = self.outer
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize()
    }
}

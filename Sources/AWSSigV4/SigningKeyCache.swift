import Crypto
import Synchronization

/// Derived SigV4 signing keys, cached per (secret, date, region, service).
///
/// Deriving a key costs four HMACs; a gateway signs thousands of requests a second with the same
/// key, so the key is derived once a day per region. The cache is bounded: it is cleared when it
/// grows past `capacity` (old dates and rotated secrets simply fall out).
public final class SigningKeyCache: Sendable {
    struct Key: Hashable {
        var secret: String
        var day: String
        var region: String
        var service: String
    }

    private let entries = Mutex<[Key: SymmetricKey]>([:])
    private let capacity: Int

    public init(capacity: Int = 64) {
        self.capacity = capacity
    }

    func signingKey(secret: String, day: String, region: String, service: String) -> SymmetricKey {
        let key = Key(secret: secret, day: day, region: region, service: service)
        if let cached = entries.withLock({ $0[key] }) {
            return cached
        }
        let derived = Self.derive(secret: secret, day: day, region: region, service: service)
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = derived
        }
        return derived
    }

    /// How many keys are cached (for tests and metrics).
    public var cachedKeyCount: Int { entries.withLock { $0.count } }

    static func derive(secret: String, day: String, region: String, service: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ text: String) -> SymmetricKey {
            SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key))
        }
        let kSecret = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        return hmac(hmac(hmac(hmac(kSecret, day), region), service), "aws4_request")
    }
}

import Crypto
import Synchronization

import struct Foundation.Date

/// Derived SigV4 signing keys, cached per (secret, date, region, service), and the last rendered date.
///
/// Deriving a key costs four HMACs; a gateway signs thousands of requests a second with the same
/// key, so the key is derived once a day per region. What is cached is an HMAC already keyed with
/// the signing key: each signature copies it and hashes only its own string to sign. The cache is
/// bounded: it is cleared when it grows past `capacity` (old dates and rotated secrets fall out).
public final class SigningKeyCache: Sendable {
    struct Key: Hashable {
        var secret: String
        var day: String
        var region: String
        var service: String
    }

    private let entries = Mutex<[Key: PreparedHMAC]>([:])
    /// The key used last: nearly every signature of a gateway uses it, and comparing the same string
    /// objects is cheaper than hashing them.
    private let mostRecent = Mutex<(key: Key, hmac: PreparedHMAC)?>(nil)
    private let lastDate = Mutex<(second: Int64, date: AMZDate)?>(nil)
    private let capacity: Int
    /// The current second's canonical requests and strings to sign up to their last hashes, for
    /// every template signed with this cache (`SignatureHeads`).
    let heads = SignatureHeads()

    public init(capacity: Int = 64) {
        self.capacity = capacity
    }

    /// An HMAC keyed with the signing key, ready for the string to sign.
    func keyedHMAC(secret: String, day: String, region: String, service: String) -> PreparedHMAC {
        let key = Key(secret: secret, day: day, region: region, service: service)
        if let recent = mostRecent.withLock({ $0 }), recent.key == key {
            return recent.hmac
        }
        if let cached = entries.withLock({ $0[key] }) {
            mostRecent.withLock { $0 = (key, cached) }
            return cached
        }
        let keyed = PreparedHMAC(key: Self.derive(secret: secret, day: day, region: region, service: service))
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = keyed
        }
        mostRecent.withLock { $0 = (key, keyed) }
        return keyed
    }

    /// The rendering of `date`, reused while requests are signed within the same second.
    func amzDate(_ date: Date) -> AMZDate {
        let second = Int64(date.timeIntervalSince1970.rounded(.down))
        if let last = lastDate.withLock({ $0 }), last.second == second {
            return last.date
        }
        let rendered = AMZDate(date)
        lastDate.withLock { $0 = (second, rendered) }
        return rendered
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

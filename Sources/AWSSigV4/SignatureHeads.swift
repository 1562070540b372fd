import Crypto
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What every signature of one template shares within one second, hashed once: the canonical
/// request up to its payload hash, and the string to sign up to the canonical request's hash (in an
/// HMAC already keyed with the day's signing key).
///
/// Within a second the date is the same, and so is everything in both texts but the two hashes at
/// their ends. A signature then costs the payload hash's 64 bytes and the canonical hash's 64 bytes
/// on top of the kept states: about three SHA-256 blocks fewer than hashing both texts from their
/// kept openings. Tested against `SigV4Signer.sign(_:credentials:date:)`.
///
/// One store per `SigningKeyCache`, shared by all its templates, that holds only the current
/// second: the first signature of a new second, for any template, drops every head of the last
/// one (and with them the secrets and keyed states they hold), so nothing outlives a credential
/// rotation by more than a second of signing.
final class SignatureHeads: Sendable {
    /// Everything a head depends on: the template, the date, the template's variable values, the
    /// signed token, and the signer's secret, region and service. Compared byte for byte (Swift's
    /// `==` would take two spellings of one Unicode text as equal).
    struct Key: Sendable {
        var template: ObjectIdentifier
        var timestamp: String
        var values: [String]
        var token: String?
        var secret: String
        var region: String
        var service: String

        func matches(template: ObjectIdentifier, values: some Collection<String>, token: String?, secret: String, region: String, service: String) -> Bool {
            self.template == template && Self.same(self.secret, secret) && Self.same(self.region, region) && Self.same(self.service, service)
                && Self.same(self.token, token)
                && self.values.count == values.count && zip(self.values, values).allSatisfy { Self.same($0, $1) }
        }

        static func same(_ lhs: String?, _ rhs: String?) -> Bool {
            guard let lhs, let rhs else { return lhs == nil && rhs == nil }
            return same(lhs, rhs)
        }

        /// Over the bytes in place (borrowed, where copies into `var`s to reach `withUTF8` retained
        /// and released both strings, for each of the half dozen compared per signature).
        static func same(_ lhs: String, _ rhs: String) -> Bool {
            let inPlace = lhs.utf8.withContiguousStorageIfAvailable { left in
                rhs.utf8.withContiguousStorageIfAvailable { right in
                    left.count == right.count && (left.isEmpty || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0)
                }
            }
            if let inPlace, let same = inPlace { return same }
            return lhs.utf8.elementsEqual(rhs.utf8)
        }
    }

    /// A class: a signature takes the kept head out of the store, where a struct's copy retained
    /// the dozen strings, arrays and hash states in it.
    final class Head: Sendable {
        let key: Key
        /// The canonical request through the `\n` after its signed headers.
        let canonical: SHA256
        /// HMAC with `AWS4-HMAC-SHA256\n<timestamp>\n<scope>\n` absorbed.
        let stringToSign: PreparedHMAC
        /// `<day>/<region>/<service>/aws4_request`, for the `Authorization` value.
        let scope: [UInt8]
        let signedHeaders: [UInt8]

        init(key: Key, canonical: SHA256, stringToSign: PreparedHMAC, scope: [UInt8], signedHeaders: [UInt8]) {
            self.key = key
            self.canonical = canonical
            self.stringToSign = stringToSign
            self.scope = scope
            self.signedHeaders = signedHeaders
        }
    }

    /// The current second's heads, by template.
    private let current = Mutex<(timestamp: String, heads: [ObjectIdentifier: [Head]])>(("", [:]))
    /// Heads per template (Lambda's: one per invocation type) and in all, within a second.
    static let perTemplate = 4
    static let capacity = 4096

    /// The secrets the kept heads were made with (for tests).
    var keptSecrets: [String] {
        current.withLock { $0.heads.values.flatMap { $0.map(\.key.secret) } }
    }

    /// The head for these inputs: kept, or made by `make` and kept.
    func head(
        template: ObjectIdentifier, timestamp: String, values: some Collection<String>, token: String?, secret: String, region: String, service: String,
        make: (Key) -> Head
    ) -> Head {
        let found = current.withLock { current -> Head? in
            guard Key.same(current.timestamp, timestamp) else { return nil }
            return current.heads[template]?.first { $0.key.matches(template: template, values: values, token: token, secret: secret, region: region, service: service) }
        }
        if let found { return found }
        let made = make(Key(template: template, timestamp: timestamp, values: Array(values), token: token, secret: secret, region: region, service: service))
        current.withLock { current in
            if !Key.same(current.timestamp, timestamp) || current.heads.count >= Self.capacity {
                // Another second (a late signature of the last one starts over too, harmlessly).
                current = (timestamp, [:])
            }
            var heads = current.heads[template] ?? []
            if heads.count >= Self.perTemplate { heads.removeFirst() }
            heads.append(made)
            current.heads[template] = heads
        }
        return made
    }
}

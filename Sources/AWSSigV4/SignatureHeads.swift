import Crypto
import Synchronization

/// What every signature of one template shares within one second, hashed once: the canonical
/// request up to its payload hash, and the string to sign up to the canonical request's hash (in an
/// HMAC already keyed with the day's signing key).
///
/// Within a second the date is the same, and so is everything in both texts but the two hashes at
/// their ends. A signature then costs the payload hash's 64 bytes and the canonical hash's 64 bytes
/// on top of the kept states: about three SHA-256 blocks fewer than hashing both texts from their
/// kept openings. Tested against `SigV4Signer.sign(_:credentials:date:)`.
final class SignatureHeads: Sendable {
    /// Everything the heads depend on: the date, the template's variable values, the signed token,
    /// and the signer's secret, region and service.
    struct Key: Sendable {
        var timestamp: String
        var values: [String]
        var token: String?
        var secret: String
        var region: String
        var service: String

        func matches(timestamp: String, values: some Collection<String>, token: String?, secret: String, region: String, service: String) -> Bool {
            self.timestamp == timestamp && self.token == token && self.secret == secret && self.region == region && self.service == service
                && self.values.elementsEqual(values)
        }
    }

    struct Head: Sendable {
        let key: Key
        /// The canonical request through the `\n` after its signed headers.
        let canonical: SHA256
        /// HMAC with `AWS4-HMAC-SHA256\n<timestamp>\n<scope>\n` absorbed.
        let stringToSign: PreparedHMAC
        /// `<day>/<region>/<service>/aws4_request`, for the `Authorization` value.
        let scope: [UInt8]
        let signedHeaders: [UInt8]
    }

    /// The heads of the current second, one per set of values (Lambda's: the two invocation types).
    private let heads = Mutex<[Head]>([])
    static let capacity = 4

    /// The head for these inputs: kept, or made by `make` and kept.
    func head(timestamp: String, values: some Collection<String>, token: String?, secret: String, region: String, service: String, make: (Key) -> Head) -> Head {
        let found = heads.withLock { heads in
            heads.first { $0.key.matches(timestamp: timestamp, values: values, token: token, secret: secret, region: region, service: service) }
        }
        if let found { return found }
        let made = make(Key(timestamp: timestamp, values: Array(values), token: token, secret: secret, region: region, service: service))
        heads.withLock { heads in
            // Another second, or other credentials: what was kept will not be asked for again.
            heads.removeAll { $0.key.timestamp != timestamp || $0.key.secret != secret || $0.key.token != token }
            if heads.count >= Self.capacity { heads.removeFirst() }
            heads.append(made)
        }
        return made
    }
}

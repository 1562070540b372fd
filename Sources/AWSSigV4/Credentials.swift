import struct Foundation.Date

/// One AWS identity: what SigV4 needs to sign, plus when it stops being valid.
///
/// `description` never prints the secret or the token, so credentials can appear in logs and errors.
public struct Credentials: Sendable, Hashable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// `nil` for credentials that never expire (environment, static files).
    public var expiration: Date?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    /// The time left before `expiration` at `now` (negative once past it); `nil` when the
    /// credentials never expire.
    public func remainingLifetime(at now: Date) -> Duration? {
        expiration.map { .seconds($0.timeIntervalSince(now)) }
    }

    public var description: String {
        var text = "Credentials(accessKeyID: \(accessKeyID)"
        if sessionToken != nil { text += ", temporary" }
        if let expiration { text += ", expires: \(expiration)" }
        return text + ")"
    }
}

import AWSSigV4

/// What a signer needs from credentials: a usable set now, and a way to report that AWS refused it.
public protocol CredentialSource: Sendable {
    func credentials(timeout: Duration) async throws(CredentialsError) -> Credentials
    func authenticationFailed()
}

extension CredentialCache: CredentialSource {}

/// Fixed credentials (tests, `--access-key` style tools). Never refreshed.
public struct StaticCredentialSource: CredentialSource {
    public let fixed: Credentials

    public init(_ credentials: Credentials) {
        self.fixed = credentials
    }

    public func credentials(timeout: Duration) async throws(CredentialsError) -> Credentials { fixed }
    public func authenticationFailed() {}
}

import AWSSigV4

/// What a signer needs from credentials: a usable set now, and a way to report that AWS refused it.
public protocol CredentialSource: Sendable {
    func credentials(timeout: Duration) async throws(CredentialsError) -> Credentials
    /// Credentials usable now, without waiting, or nil: the caller then waits in
    /// `credentials(timeout:)`. Lets a request be signed with no task (the usual case).
    func usableCredentials() -> Credentials?
    func authenticationFailed()
}

extension CredentialSource {
    public func usableCredentials() -> Credentials? { nil }
}

extension CredentialCache: CredentialSource {}

/// Fixed credentials (tests, `--access-key` style tools). Never refreshed.
public struct StaticCredentialSource: CredentialSource {
    public let fixed: Credentials

    public init(_ credentials: Credentials) {
        self.fixed = credentials
    }

    public func credentials(timeout: Duration) async throws(CredentialsError) -> Credentials { fixed }
    public func usableCredentials() -> Credentials? { fixed }
    public func authenticationFailed() {}
}

import AWSSigV4

/// One source of AWS credentials in the chain (docs/ARCHITECTURE.md, Credentials).
public protocol CredentialProvider: Sendable {
    /// Shown in logs and errors: `environment`, `shared-credentials-file`, `web-identity`, ...
    var name: String { get }
    /// Whether the provider's trigger is present (e.g. its environment variables are set).
    var isConfigured: Bool { get }
    /// Fetches credentials. Only called when `isConfigured`.
    func fetch() async throws -> Credentials
    /// How long credentials without an `Expiration` stay good before they are fetched again;
    /// `nil` means forever (environment variables).
    var refreshIntervalWithoutExpiration: Duration? { get }
}

extension CredentialProvider {
    public var refreshIntervalWithoutExpiration: Duration? { .seconds(3600) }
}

/// The process environment as a plain dictionary, so tests and callers inject it.
public typealias Environment = [String: String]

extension Environment {
    /// A variable's value when set and not empty.
    func nonEmpty(_ name: String) -> String? {
        guard let value = self[name], !value.isEmpty else { return nil }
        return value
    }
}

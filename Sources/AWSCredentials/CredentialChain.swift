import AWSSigV4
import AsyncHTTPClient
import Logging

/// The providers in the standard order (docs/ARCHITECTURE.md, Credentials): the first configured one that answers wins.
public struct CredentialChain: Sendable {
    public let providers: [any CredentialProvider]

    public init(providers: [any CredentialProvider]) {
        self.providers = providers
    }

    /// Environment, shared files, web identity, container, instance metadata.
    public static func standard(environment: Environment, httpClient: HTTPClient) -> CredentialChain {
        CredentialChain(providers: [
            EnvironmentProvider(environment: environment),
            SharedFileProvider(environment: environment),
            WebIdentityProvider(environment: environment, httpClient: httpClient),
            ContainerProvider(environment: environment, httpClient: httpClient),
            InstanceMetadataProvider(environment: environment, httpClient: httpClient),
        ])
    }

    public struct Resolved: Sendable {
        public var credentials: Credentials
        public var provider: any CredentialProvider
    }

    /// Walks the chain; a configured provider that fails is logged and the walk goes on.
    public func resolve(logger: Logger) async throws(CredentialsError) -> Resolved {
        var failures: [String] = []
        for provider in providers where provider.isConfigured {
            do {
                let credentials = try await provider.fetch()
                logger.debug("credentials resolved", metadata: ["provider": "\(provider.name)", "access_key_id": "\(credentials.accessKeyID)"])
                return Resolved(credentials: credentials, provider: provider)
            } catch {
                logger.warning("credential provider failed", metadata: ["provider": "\(provider.name)", "error": "\(error)"])
                failures.append("\(error)")
            }
        }
        if failures.isEmpty {
            throw CredentialsError(.noCredentials, provider: "chain", "no credential provider is configured (environment, shared file, web identity, container, instance metadata)")
        }
        throw CredentialsError(.noCredentials, provider: "chain", failures.joined(separator: "; "))
    }
}

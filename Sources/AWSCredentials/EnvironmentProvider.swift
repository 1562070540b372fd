import AWSSigV4

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`.
public struct EnvironmentProvider: CredentialProvider {
    public let name = "environment"
    let environment: Environment

    public init(environment: Environment) {
        self.environment = environment
    }

    public var isConfigured: Bool {
        environment.nonEmpty("AWS_ACCESS_KEY_ID") != nil && environment.nonEmpty("AWS_SECRET_ACCESS_KEY") != nil
    }

    public var refreshIntervalWithoutExpiration: Duration? { nil }

    public func fetch() async throws -> Credentials {
        guard let id = environment.nonEmpty("AWS_ACCESS_KEY_ID"), let secret = environment.nonEmpty("AWS_SECRET_ACCESS_KEY") else {
            throw CredentialsError(.providerFailed, provider: name, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set")
        }
        return Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: environment.nonEmpty("AWS_SESSION_TOKEN"))
    }
}

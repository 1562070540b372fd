/// Why credentials could not be had. Messages name the provider and what it was given, never a secret.
public struct CredentialsError: Error, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// No provider in the chain was configured, or every configured one failed.
        case noCredentials = "NoCredentials"
        /// A provider was configured but its answer or its input was unusable.
        case providerFailed = "ProviderFailed"
        /// A configuration the project refuses (e.g. a container URI to a non-loopback http host).
        case refused = "Refused"
    }

    public var code: Code
    public var provider: String
    public var message: String

    public init(_ code: Code, provider: String, _ message: String) {
        self.code = code
        self.provider = provider
        self.message = message
    }

    public var description: String { "\(provider): \(message)" }
}

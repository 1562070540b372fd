import AWSSigV4
import AsyncHTTPClient
import Foundation

/// ECS task roles and EKS Pod Identity: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on 169.254.170.2)
/// or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with an optional authorization token.
public struct ContainerProvider: CredentialProvider {
    public let name = "container"
    let environment: Environment
    let http: MetadataHTTP
    /// Where a relative URI is resolved; a parameter only so tests can serve it.
    let relativeBase: String

    public init(environment: Environment, httpClient: HTTPClient, relativeBase: String = "http://169.254.170.2") {
        self.environment = environment
        self.http = MetadataHTTP(client: httpClient, provider: name)
        self.relativeBase = relativeBase
    }

    public var isConfigured: Bool {
        environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != nil
            || environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_FULL_URI") != nil
    }

    /// The URL to ask, after the project's rule on full URIs (docs/DECISIONS.md D3).
    func url() throws -> String {
        if let relative = environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            return relativeBase + (relative.hasPrefix("/") ? relative : "/" + relative)
        }
        guard let full = environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_FULL_URI") else {
            throw CredentialsError(.providerFailed, provider: name, "no container credentials URI is set")
        }
        guard let components = URLComponents(string: full), let scheme = components.scheme?.lowercased(), let host = components.host else {
            throw CredentialsError(.refused, provider: name, "AWS_CONTAINER_CREDENTIALS_FULL_URI \"\(full)\" is not a URL")
        }
        if scheme == "https" { return full }
        guard scheme == "http", Self.isAllowedPlainHTTPHost(host) else {
            throw CredentialsError(
                .refused,
                provider: name,
                "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback or the ECS/EKS link-local address; got \(full)"
            )
        }
        return full
    }

    static func isAllowedPlainHTTPHost(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if ["localhost", "::1", "169.254.170.2", "169.254.170.23", "fd00:ec2::23"].contains(bare) { return true }
        let octets = bare.split(separator: ".")
        return octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    func authorizationToken() throws -> String? {
        var token: String?
        if let file = environment.nonEmpty("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            do {
                token = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw CredentialsError(.providerFailed, provider: name, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(file): \(error)")
            }
        } else {
            token = environment.nonEmpty("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        }
        if let token, token.contains(where: { $0 == "\r" || $0 == "\n" }) {
            throw CredentialsError(.refused, provider: name, "the container authorization token contains a line break")
        }
        return token
    }

    public func fetch() async throws -> Credentials {
        let url = try url()
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let token = try authorizationToken() { headers.append(("Authorization", token)) }
        let response = try await http.send(.GET, url, headers: headers, timeout: .seconds(5))
        return try http.decode(MetadataCredentialsDocument.self, from: response, url: url).credentials
    }
}

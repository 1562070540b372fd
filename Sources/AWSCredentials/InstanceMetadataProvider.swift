import AWSSigV4
import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers

/// EC2 instance metadata: IMDSv2 (session token) with a fall back to IMDSv1 when the token `PUT` fails.
public struct InstanceMetadataProvider: CredentialProvider {
    public let name = "instance-metadata"
    let environment: Environment
    let http: MetadataHTTP
    let now: @Sendable () -> Date
    /// The IMDSv2 session token, reused until 60 s before its TTL ends.
    private let session = NIOLockedValueBox<(token: String, expires: Date)?>(nil)

    static let tokenTTL = 21_600

    public init(environment: Environment, httpClient: HTTPClient, now: @escaping @Sendable () -> Date = Date.init) {
        self.environment = environment
        self.http = MetadataHTTP(client: httpClient, provider: name)
        self.now = now
    }

    public var isConfigured: Bool {
        let containerSet =
            environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != nil
            || environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_FULL_URI") != nil
        return !containerSet && environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() != "true"
    }

    /// Each call's timeout: 2 s by default, or `AWS_METADATA_SERVICE_TIMEOUT` seconds as the AWS
    /// SDKs read it.
    var callTimeout: Duration {
        if let text = environment.nonEmpty("AWS_METADATA_SERVICE_TIMEOUT"), let seconds = Double(text), seconds > 0, seconds <= 3600 {
            return .seconds(seconds)
        }
        return .seconds(2)
    }

    var base: String {
        let endpoint = environment.nonEmpty("AWS_EC2_METADATA_SERVICE_ENDPOINT") ?? "http://169.254.169.254"
        return endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
    }

    /// A session token, or `nil` to use IMDSv1 (any failure of the `PUT` means v1).
    func sessionToken() async -> String? {
        if let cached = session.withLockedValue({ $0 }), cached.expires > now() {
            return cached.token
        }
        guard
            let response = try? await http.send(
                .PUT,
                "\(base)/latest/api/token",
                headers: [("X-aws-ec2-metadata-token-ttl-seconds", String(Self.tokenTTL))],
                timeout: callTimeout
            ),
            response.status == 200,
            !response.text.isEmpty
        else {
            return nil
        }
        let token = response.text.trimmingCharacters(in: .whitespacesAndNewlines)
        session.withLockedValue { $0 = (token, now().addingTimeInterval(Double(Self.tokenTTL - 60))) }
        return token
    }

    public func fetch() async throws -> Credentials {
        let token = await sessionToken()
        let headers = token.map { [("X-aws-ec2-metadata-token", $0)] } ?? []
        let listURL = "\(base)/latest/meta-data/iam/security-credentials/"
        let list = try await http.send(.GET, listURL, headers: headers, timeout: callTimeout)
        guard list.status == 200 else {
            if list.status == 401 { session.withLockedValue { $0 = nil } }
            throw CredentialsError(.providerFailed, provider: name, "\(listURL) answered \(list.status)")
        }
        guard let role = list.text.split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }),
            !role.isEmpty
        else {
            throw CredentialsError(.providerFailed, provider: name, "no IAM role is attached to this instance")
        }
        let roleURL = listURL + URIEncoding.encode(role)
        let document = try http.decode(MetadataCredentialsDocument.self, from: try await http.send(.GET, roleURL, headers: headers, timeout: callTimeout), url: roleURL)
        if let code = document.Code, code != "Success" {
            throw CredentialsError(.providerFailed, provider: name, "\(roleURL) answered Code \(code)")
        }
        return document.credentials
    }
}

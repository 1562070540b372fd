import AWSSigV4
import AsyncHTTPClient
import Foundation

/// IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` exchanged at STS `AssumeRoleWithWebIdentity`.
///
/// The STS endpoint is `https://sts.<region>.amazonaws.com` (`.com.cn` in China); `AWS_ENDPOINT_URL_STS`
/// overrides it, as in the AWS SDKs.
public struct WebIdentityProvider: CredentialProvider {
    public let name = "web-identity"
    let environment: Environment
    let http: MetadataHTTP
    let now: @Sendable () -> Date

    public init(environment: Environment, httpClient: HTTPClient, now: @escaping @Sendable () -> Date = Date.init) {
        self.environment = environment
        self.http = MetadataHTTP(client: httpClient, provider: name)
        self.now = now
    }

    public var isConfigured: Bool {
        environment.nonEmpty("AWS_WEB_IDENTITY_TOKEN_FILE") != nil && environment.nonEmpty("AWS_ROLE_ARN") != nil
    }

    var region: String {
        environment.nonEmpty("AWS_REGION") ?? environment.nonEmpty("AWS_DEFAULT_REGION") ?? "us-east-1"
    }

    var endpoint: String {
        if let override = environment.nonEmpty("AWS_ENDPOINT_URL_STS") {
            return override.hasSuffix("/") ? String(override.dropLast()) : override
        }
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        return "https://sts.\(region).\(suffix)"
    }

    public func fetch() async throws -> Credentials {
        guard let tokenFile = environment.nonEmpty("AWS_WEB_IDENTITY_TOKEN_FILE"), let roleARN = environment.nonEmpty("AWS_ROLE_ARN") else {
            throw CredentialsError(.providerFailed, provider: name, "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN must both be set")
        }
        let token: String
        do {
            token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw CredentialsError(.providerFailed, provider: name, "cannot read the token file \(tokenFile): \(error)")
        }
        let sessionName = environment.nonEmpty("AWS_ROLE_SESSION_NAME") ?? "lambda-gateway-\(Int64(now().timeIntervalSince1970 * 1000))"
        let query = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
            ("RoleSessionName", sessionName), ("WebIdentityToken", token),
        ].map { "\($0.0)=\(URIEncoding.encode($0.1))" }.joined(separator: "&")
        let url = "\(endpoint)/?\(query)"
        let shownURL = "\(endpoint)/?Action=AssumeRoleWithWebIdentity"
        let response = try await http.send(.GET, url, headers: [("Accept", "application/json")], timeout: .seconds(10))
        let answer = try http.decode(STSAnswer.self, from: response, url: shownURL)
        let result = answer.AssumeRoleWithWebIdentityResponse.AssumeRoleWithWebIdentityResult.Credentials
        return Credentials(
            accessKeyID: result.AccessKeyId,
            secretAccessKey: result.SecretAccessKey,
            sessionToken: result.SessionToken,
            expiration: result.Expiration.date
        )
    }

    struct STSAnswer: Decodable {
        struct Response: Decodable { var AssumeRoleWithWebIdentityResult: Result }
        struct Result: Decodable { var Credentials: STSCredentials }
        struct STSCredentials: Decodable {
            var AccessKeyId: String
            var SecretAccessKey: String
            var SessionToken: String
            var Expiration: ExpirationDate
        }
        var AssumeRoleWithWebIdentityResponse: Response
    }
}

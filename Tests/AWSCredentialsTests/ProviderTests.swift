import AWSSigV4
import AsyncHTTPClient
import Foundation
import Logging
import TestSupport
import Testing

@testable import AWSCredentials

let testLogger = Logger(label: "test")

@Suite("Environment and shared file providers")
struct StaticProviderTests {
    @Test func environmentNeedsBothKeysAndReadsTheToken() async throws {
        #expect(!EnvironmentProvider(environment: ["AWS_ACCESS_KEY_ID": "AKID"]).isConfigured)
        #expect(!EnvironmentProvider(environment: ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": ""]).isConfigured)
        let provider = EnvironmentProvider(environment: ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T"])
        #expect(provider.isConfigured)
        let credentials = try await provider.fetch()
        #expect(credentials == Credentials(accessKeyID: "AKID", secretAccessKey: "S", sessionToken: "T"))
        #expect(provider.refreshIntervalWithoutExpiration == nil)
    }

    @Test func sharedFileProfilesCommentsAndCase() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.file(
            "credentials",
            contents: """
                # comment
                [default]
                aws_access_key_id = DEFAULTKEY
                aws_secret_access_key = defaultsecret

                ; another comment
                [prod]
                AWS_Access_Key_ID=PRODKEY
                aws_secret_access_key = prodsecret # inline comment
                aws_session_token = prodtoken
                """
        )
        let byDefault = SharedFileProvider(environment: ["AWS_SHARED_CREDENTIALS_FILE": path])
        #expect(byDefault.isConfigured)
        let defaults = try await byDefault.fetch()
        #expect(defaults == Credentials(accessKeyID: "DEFAULTKEY", secretAccessKey: "defaultsecret"))
        let prod = try await SharedFileProvider(environment: ["AWS_SHARED_CREDENTIALS_FILE": path, "AWS_PROFILE": "prod"]).fetch()
        #expect(prod == Credentials(accessKeyID: "PRODKEY", secretAccessKey: "prodsecret", sessionToken: "prodtoken"))
    }

    @Test func configFileProfileSectionIsReadAfterTheCredentialsFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.file("config", contents: "[profile dev]\nregion = eu-west-1\naws_access_key_id = DEVKEY\naws_secret_access_key = devsecret\n")
        let provider = SharedFileProvider(environment: ["AWS_CONFIG_FILE": config, "AWS_SHARED_CREDENTIALS_FILE": directory.url.path + "/missing", "AWS_PROFILE": "dev"])
        let credentials = try await provider.fetch()
        #expect(credentials.accessKeyID == "DEVKEY")
    }

    @Test func missingProfileAndRoleProfilesAreClearErrors() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.file("credentials", contents: "[assume]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n")
        await #expect(throws: CredentialsError.self) { try await SharedFileProvider(environment: ["AWS_SHARED_CREDENTIALS_FILE": path]).fetch() }
        do {
            _ = try await SharedFileProvider(environment: ["AWS_SHARED_CREDENTIALS_FILE": path, "AWS_PROFILE": "assume"]).fetch()
            Issue.record("role profiles are not supported")
        } catch let error as CredentialsError {
            #expect(error.message.contains("role_arn is not supported"))
        }
    }

    @Test func notConfiguredWithoutFiles() {
        #expect(!SharedFileProvider(environment: ["HOME": "/nonexistent-home"]).isConfigured)
    }
}

/// Starts a plain-HTTP test server and an HTTP client, and tears both down.
func withMetadataServer(
    _ handler: @escaping TestHTTPServer.Handler,
    _ body: (TestHTTPServer, HTTPClient) async throws -> Void
) async throws {
    let server = try await TestHTTPServer(handler: handler)
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    try await withTeardown {
        try await body(server, client)
    } teardown: {
        try? await client.shutdown()
        await server.shutdown()
    }
}

@Suite("Web identity provider")
struct WebIdentityProviderTests {
    @Test func assumesTheRoleWithTheTokenFromTheFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = try directory.file("token", contents: "eyJhbGciOi.token.sig\n")
        try await withMetadataServer({ request in
            ScriptedResponse(
                json:
                    #"{"AssumeRoleWithWebIdentityResponse":{"AssumeRoleWithWebIdentityResult":{"Credentials":{"AccessKeyId":"ASIASTS","SecretAccessKey":"stssecret","SessionToken":"ststoken","Expiration":1.9e9}}}}"#
            )
        }) { server, client in
            let provider = WebIdentityProvider(
                environment: [
                    "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/gw",
                    "AWS_ROLE_SESSION_NAME": "gw session", "AWS_ENDPOINT_URL_STS": server.baseURL,
                ],
                httpClient: client
            )
            #expect(provider.isConfigured)
            let credentials = try await provider.fetch()
            #expect(credentials == Credentials(accessKeyID: "ASIASTS", secretAccessKey: "stssecret", sessionToken: "ststoken", expiration: Date(timeIntervalSince1970: 1.9e9)))
            let request = try #require(server.requests.first)
            #expect(request.method == "GET")
            #expect(request.header("accept") == "application/json")
            #expect(request.header("authorization") == nil)
            #expect(request.uri.contains("Action=AssumeRoleWithWebIdentity"))
            #expect(request.uri.contains("Version=2011-06-15"))
            #expect(request.uri.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fgw"))
            #expect(request.uri.contains("RoleSessionName=gw%20session"))
            #expect(request.uri.contains("WebIdentityToken=eyJhbGciOi.token.sig&") || request.uri.hasSuffix("WebIdentityToken=eyJhbGciOi.token.sig"))
        }
    }

    @Test func rfc3339ExpirationAndDefaultEndpoint() async throws {
        #expect(ExpirationDate.parse("2026-11-24T21:00:00Z") == Date(timeIntervalSince1970: 1_795_554_000))
        #expect(ExpirationDate.parse("2026-11-24T21:00:00.500Z") == Date(timeIntervalSince1970: 1_795_554_000.5))
        let client = HTTPClient.shared
        #expect(WebIdentityProvider(environment: ["AWS_REGION": "eu-west-1"], httpClient: client).endpoint == "https://sts.eu-west-1.amazonaws.com")
        #expect(WebIdentityProvider(environment: ["AWS_DEFAULT_REGION": "cn-north-1"], httpClient: client).endpoint == "https://sts.cn-north-1.amazonaws.com.cn")
        #expect(WebIdentityProvider(environment: [:], httpClient: client).endpoint == "https://sts.us-east-1.amazonaws.com")
    }

    @Test func stsErrorsAndMalformedAnswersAreReported() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = try directory.file("token", contents: "t")
        for answer in [ScriptedResponse(status: 403, json: #"{"Error":{"Code":"AccessDenied"}}"#), ScriptedResponse(json: #"{"unexpected":true}"#), ScriptedResponse(json: "not json")] {
            try await withMetadataServer({ _ in answer }) { server, client in
                let provider = WebIdentityProvider(
                    environment: ["AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "AWS_ENDPOINT_URL_STS": server.baseURL],
                    httpClient: client
                )
                await #expect(throws: CredentialsError.self) { try await provider.fetch() }
            }
        }
    }
}

@Suite("Container provider")
struct ContainerProviderTests {
    static let answer = #"{"AccessKeyId":"ASIACONT","SecretAccessKey":"csecret","Token":"ctoken","Expiration":"2099-01-01T00:00:00Z"}"#

    @Test func fullURIWithTokenFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = try directory.file("token", contents: "  pod-token\n")
        try await withMetadataServer({ _ in ScriptedResponse(json: Self.answer) }) { server, client in
            let provider = ContainerProvider(
                environment: [
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "\(server.baseURL)/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored",
                ],
                httpClient: client
            )
            let credentials = try await provider.fetch()
            #expect(credentials.accessKeyID == "ASIACONT")
            #expect(credentials.sessionToken == "ctoken")
            #expect(credentials.expiration == ISO8601DateFormatter().date(from: "2099-01-01T00:00:00Z"))
            #expect(server.requests.first?.path == "/v1/credentials")
            #expect(server.requests.first?.header("authorization") == "pod-token")
        }
    }

    @Test func relativeURIWithTokenVariable() async throws {
        try await withMetadataServer({ _ in ScriptedResponse(json: Self.answer) }) { server, client in
            let provider = ContainerProvider(
                environment: ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok"],
                httpClient: client,
                relativeBase: server.baseURL
            )
            let credentials = try await provider.fetch()
            #expect(credentials.accessKeyID == "ASIACONT")
            #expect(server.requests.first?.path == "/v2/credentials/abc")
            #expect(server.requests.first?.header("authorization") == "tok")
        }
    }

    @Test(arguments: ["http://10.0.0.5/creds", "http://example.com/creds", "ftp://127.0.0.1/x", "not a url"])
    func plainHTTPToOtherHostsIsRefused(uri: String) async throws {
        let client = HTTPClient.shared
        let provider = ContainerProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": uri], httpClient: client)
        #expect(throws: CredentialsError.self) { try provider.url() }
    }

    @Test(arguments: ["http://127.0.0.1:9/x", "http://127.10.0.1/x", "http://localhost/x", "http://[::1]:8/x", "http://169.254.170.23/v1", "https://creds.example.com/x"])
    func allowedFullURIs(uri: String) throws {
        let client = HTTPClient.shared
        #expect(try ContainerProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": uri], httpClient: client).url() == uri)
    }

    @Test func tokenWithLineBreakIsRefused() async throws {
        let client = HTTPClient.shared
        let provider = ContainerProvider(
            environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/x", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "a\r\nX-Injected: 1"],
            httpClient: client
        )
        await #expect(throws: CredentialsError.self) { try await provider.fetch() }
    }

    @Test func malformedAnswerIsAnError() async throws {
        try await withMetadataServer({ _ in ScriptedResponse(json: #"{"AccessKeyId":"A","Expiration":"soon"}"#) }) { server, client in
            let provider = ContainerProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "\(server.baseURL)/c"], httpClient: client)
            await #expect(throws: CredentialsError.self) { try await provider.fetch() }
        }
    }
}

@Suite("Instance metadata provider")
struct InstanceMetadataProviderTests {
    static let roleAnswer =
        #"{"Code":"Success","LastUpdated":"2026-11-24T20:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS","SecretAccessKey":"isecret","Token":"itoken","Expiration":"2099-01-01T00:00:00Z"}"#

    static func imds(tokenWorks: Bool) -> TestHTTPServer.Handler {
        { request in
            switch (request.method, request.path) {
            case ("PUT", "/latest/api/token"):
                guard tokenWorks, request.header("x-aws-ec2-metadata-token-ttl-seconds") == "21600" else { return ScriptedResponse(status: 403) }
                return ScriptedResponse(body: Array("session-token".utf8))
            case ("GET", "/latest/meta-data/iam/security-credentials/"):
                return ScriptedResponse(body: Array("gateway-role\n".utf8))
            case ("GET", "/latest/meta-data/iam/security-credentials/gateway-role"):
                return ScriptedResponse(json: roleAnswer)
            default:
                return ScriptedResponse(status: 404)
            }
        }
    }

    @Test func imdsV2UsesTheSessionTokenAndReusesIt() async throws {
        try await withMetadataServer(Self.imds(tokenWorks: true)) { server, client in
            let provider = InstanceMetadataProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.baseURL, "AWS_METADATA_SERVICE_TIMEOUT": "30"], httpClient: client)
            #expect(provider.isConfigured)
            let first = try await provider.fetch()
            let second = try await provider.fetch()
            #expect(first.accessKeyID == "ASIAIMDS")
            #expect(second.sessionToken == "itoken")
            let requests = server.requests
            #expect(requests.filter { $0.method == "PUT" }.count == 1)
            #expect(requests.filter { $0.method == "GET" }.allSatisfy { $0.header("x-aws-ec2-metadata-token") == "session-token" })
        }
    }

    @Test func tokenFailureFallsBackToIMDSv1() async throws {
        try await withMetadataServer(Self.imds(tokenWorks: false)) { server, client in
            let provider = InstanceMetadataProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.baseURL, "AWS_METADATA_SERVICE_TIMEOUT": "30"], httpClient: client)
            let credentials = try await provider.fetch()
            #expect(credentials.accessKeyID == "ASIAIMDS")
            #expect(server.requests.filter { $0.method == "GET" }.allSatisfy { $0.header("x-aws-ec2-metadata-token") == nil })
        }
    }

    @Test func theCallTimeoutIsTwoSecondsOrTheSDKVariable() {
        let client = HTTPClient.shared
        func timeout(_ value: String?) -> Duration {
            InstanceMetadataProvider(environment: value.map { ["AWS_METADATA_SERVICE_TIMEOUT": $0] } ?? [:], httpClient: client).callTimeout
        }
        #expect(timeout(nil) == .seconds(2))
        #expect(timeout("5") == .seconds(5))
        #expect(timeout("0.25") == .milliseconds(250))
        // Nonsense keeps the default instead of a zero or negative deadline.
        for bad in ["", "0", "-1", "soon", "1e9"] { #expect(timeout(bad) == .seconds(2), "\(bad)") }
    }

    @Test func disabledOrContainerMeansNotConfigured() {
        let client = HTTPClient.shared
        #expect(!InstanceMetadataProvider(environment: ["AWS_EC2_METADATA_DISABLED": "TRUE"], httpClient: client).isConfigured)
        #expect(!InstanceMetadataProvider(environment: ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/x"], httpClient: client).isConfigured)
    }

    @Test func malformedOrFailedAnswersAreErrors() async throws {
        let answers: [ScriptedResponse] = [ScriptedResponse(json: "{"), ScriptedResponse(json: #"{"Code":"AssumeRoleUnauthorizedAccess","AccessKeyId":"","SecretAccessKey":""}"#)]
        for answer in answers {
            try await withMetadataServer({ request in
                request.path.hasSuffix("/security-credentials/") ? ScriptedResponse(body: Array("r".utf8)) : answer
            }) { server, client in
                let provider = InstanceMetadataProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.baseURL, "AWS_METADATA_SERVICE_TIMEOUT": "30"], httpClient: client)
                await #expect(throws: CredentialsError.self) { try await provider.fetch() }
            }
        }
    }
}

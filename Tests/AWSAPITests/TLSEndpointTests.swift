import AWSAPI
import TestSupport
import Testing

/// An https:// endpoint whose CA only AWS_CA_BUNDLE names (as a private endpoint or a TLS test
/// server would be): trusted through the bundle, refused without it.
@Suite("AWS endpoint over TLS with AWS_CA_BUNDLE")
struct TLSEndpointTests {
    func withTLSServer(_ body: (TestHTTPServer, TestCA, TemporaryDirectory) async throws -> Void) async throws {
        let ca = try TestCA()
        let directory = try TemporaryDirectory()
        let server = try await TestHTTPServer(tls: try ca.issueLeaf().serverTLSConfiguration()) { _ in
            ScriptedResponse(json: #"{"Parameter":{"Name":"/token","Type":"SecureString","Value":"secret-token"}}"#)
        }
        try await withTeardown(
            { try await body(server, ca, directory) },
            teardown: {
                await server.shutdown()
                directory.remove()
            })
    }

    func client(endpoint: String, caBundle: String) throws -> AWSAPIClient {
        let configuration = try AWSServiceConfiguration(environment: ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SSM": endpoint, "AWS_CA_BUNDLE": caBundle])
        return try makeClient(endpoint: endpoint) {
            $0 = configuration
            $0.maximumBackoff = .milliseconds(20)
        }
    }

    @Test func endpointSignedByTheBundlesCAIsTrusted() async throws {
        try await withTLSServer { server, ca, directory in
            try await withClient(try client(endpoint: server.baseURL, caBundle: try ca.writePEM(to: directory.url))) { client in
                let token = try await client.ssm.getParameter(name: "/token")
                #expect(token == "secret-token")
                #expect(server.requests.first?.header("Host") == "127.0.0.1:\(server.port)")
            }
        }
    }

    @Test func endpointSignedByAnotherCAIsRefusedWithoutRetrying() async throws {
        try await withTLSServer { server, _, directory in
            let otherCA = try TestCA(commonName: "some other CA").writePEM(to: directory.url)
            try await withClient(try client(endpoint: server.baseURL, caBundle: otherCA)) { client in
                let error = await #expect(throws: AWSAPIError.self) { try await client.ssm.getParameter(name: "/token") }
                #expect(error?.code == .transport)
                #expect(error?.message.contains("TLS") == true)
                #expect(server.requests.isEmpty)
                #expect(client.callCounts() == ["GetParameter": 1])
            }
        }
    }

    @Test func unreadableBundleIsAnErrorNamingTheVariable() throws {
        #expect {
            try client(endpoint: "https://127.0.0.1:1", caBundle: "/nonexistent/ca.pem")
        } throws: { error in
            let error = error as! AWSAPIError
            return error.code == .invalidRequest && error.message.contains("AWS_CA_BUNDLE")
        }
    }
}

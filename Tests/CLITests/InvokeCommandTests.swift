import ConsulAPI
import Foundation
import GatewayCore
import TestSupport
import Testing

/// Runs the built `lambda-gateway` executable as a user would.
struct CLI {
    /// The executable sits beside the test bundle in the build folder.
    public static var executable: URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("lambda-gateway").path), directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("lambda-gateway")
    }

    static func run(_ arguments: [String], environment: [String: String]) async throws -> ChildProcess.Output {
        try await ChildProcess.run([executable.path] + arguments, environment: environment)
    }
}

@Suite("lambda-gateway invoke")
struct InvokeCommandTests {
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:orders"
    let environment = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"]

    func withEndpoint(_ handler: @escaping TestHTTPServer.Handler, _ body: (TestHTTPServer, String) async throws -> Void) async throws {
        let ca = try TestCA()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await TestHTTPServer(tls: try ca.issueLeaf().serverTLSConfiguration(), handler: handler)
        try await withTeardown {
            try await body(server, try ca.writePEM(to: directory.url))
        } teardown: {
            await server.shutdown()
        }
    }

    @Test func printsTheResultOfASignedCall() async throws {
        try await withEndpoint({ request in ScriptedResponse(json: "{\"echo\":\(request.bodyText)}") }) { server, caFile in
            let output = try await CLI.run(["invoke", arn, "--data", #"{"n":1}"#, "--endpoint", server.baseURL, "--ca-file", caFile], environment: environment)
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout == "{\"echo\":{\"n\":1}}\n")
            let request = try #require(server.requests.first)
            #expect(request.header("authorization")?.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") == true)
            #expect(request.header("x-amz-invocation-type") == "RequestResponse")
        }
    }

    @Test func payloadFromAFileAndAsyncInvocation() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.file("payload.json", contents: #"{"from":"file"}"#)
        try await withEndpoint({ _ in ScriptedResponse(status: 202) }) { server, caFile in
            let output = try await CLI.run(["invoke", arn, "--data", "@\(file)", "--async", "--endpoint", server.baseURL, "--ca-file", caFile], environment: environment)
            #expect(output.status == 0, "\(output.stderr)")
            #expect(server.requests.first?.bodyText == #"{"from":"file"}"#)
            #expect(server.requests.first?.header("x-amz-invocation-type") == "Event")
        }
    }

    @Test func awsErrorsExitNonZeroWithTheCode() async throws {
        try await withEndpoint({ _ in ScriptedResponse(status: 404, headers: [("X-Amzn-ErrorType", "ResourceNotFoundException")], json: #"{"message":"Function not found: orders"}"#) }) {
            server, caFile in
            let output = try await CLI.run(["invoke", arn, "--endpoint", server.baseURL, "--ca-file", caFile], environment: environment)
            #expect(output.status == 1)
            #expect(output.stderr.contains("ResourceNotFoundException: Function not found: orders"))
        }
    }

    @Test func functionErrorsExitWithTwo() async throws {
        try await withEndpoint({ _ in ScriptedResponse(headers: [("X-Amz-Function-Error", "Unhandled")], json: #"{"errorMessage":"boom"}"#) }) { server, caFile in
            let output = try await CLI.run(["invoke", arn, "--endpoint", server.baseURL, "--ca-file", caFile], environment: environment)
            #expect(output.status == 2)
            #expect(output.stdout.contains("boom"))
            #expect(output.stderr.contains("function error (Unhandled)"))
        }
    }

    @Test func noCredentialsIsAClearErrorAndNothingIsSent() async throws {
        try await withEndpoint({ _ in ScriptedResponse(json: "{}") }) { server, caFile in
            let output = try await CLI.run(
                ["invoke", arn, "--endpoint", server.baseURL, "--ca-file", caFile, "--timeout", "2"], environment: ["HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"])
            #expect(output.status == 1)
            #expect(output.stderr.contains("NoCredentials"))
            #expect(server.requests.isEmpty)
        }
    }

    @Test func untrustedEndpointCertificateIsRefused() async throws {
        try await withEndpoint({ _ in ScriptedResponse(json: "{}") }) { server, _ in
            let output = try await CLI.run(["invoke", arn, "--endpoint", server.baseURL], environment: environment)
            #expect(output.status == 1)
            #expect(output.stderr.contains("LambdaEndpointUnreachable"))
            #expect(server.requests.isEmpty)
        }
    }

    @Test func invalidARNIsAUsageError() async throws {
        let output = try await CLI.run(["invoke", "orders"], environment: environment)
        #expect(output.status != 0)
        #expect(output.stderr.contains("invalid function ARN \"orders\""))
    }

    /// `--timeout` is parsed once into a duration: a value that cannot be one is a usage error that
    /// names the flag and the value, before anything is sent.
    @Test(arguments: ["0", "-1", "nan", "inf", "1e300", "soon"])
    func aTimeoutThatIsNotAPositiveNumberOfSecondsIsAUsageError(value: String) async throws {
        let output = try await CLI.run(["invoke", arn, "--endpoint", "https://127.0.0.1:1", "--timeout=\(value)"], environment: environment)
        #expect(output.status != 0 && output.status != 1 && output.status != 2, "\(output.status): \(output.stderr)")
        #expect(output.stderr.contains("--timeout"), "\(output.stderr)")
        #expect(output.stderr.contains("'\(value)'"), "\(output.stderr)")
    }
}

@Suite("lambda-gateway register and deregister")
struct RegisterCommandTests {
    @Test func registerThenDeregisterThroughTheCLI() async throws {
        let consul = try await ConsulTestServer()
        defer { Task { await consul.shutdown() } }
        let environment = ["HOME": "/nonexistent", "CONSUL_HTTP_ADDR": "127.0.0.1:1"]
        let arn = "arn:aws:lambda:eu-west-1:123456789012:function:resize:live"
        let registered = try await CLI.run(["register", arn, "--gateway", "lambda-gateway", "--async", "--passthrough", "--consul-addr", consul.baseURL], environment: environment)
        #expect(registered.status == 0, "\(registered.stderr)")
        #expect(registered.stdout.contains("registered resize"))
        let writes = consul.requests.filter { $0.method == "PUT" }.map(\.path)
        #expect(writes == ["/v1/config", "/v1/catalog/register", "/v1/config"])
        let defaults = try #require(consul.requests.first { $0.method == "PUT" && $0.path == "/v1/config" }).bodyText
        #expect(defaults.contains(#""ARN":"arn:aws:lambda:eu-west-1:123456789012:function:resize:live""#))
        #expect(defaults.contains(#""InvocationMode":"asynchronous""#) && defaults.contains(#""PayloadPassthrough":true"#))

        let deregistered = try await CLI.run(["deregister", arn, "--gateway", "lambda-gateway", "--consul-addr", consul.baseURL], environment: environment)
        #expect(deregistered.status == 0, "\(deregistered.stderr)")
        #expect(consul.requests.contains { $0.method == "DELETE" && $0.path == "/v1/config/service-defaults/resize" })
    }

    /// `--invoke-mode RESPONSE_STREAM` writes `InvokeMode` into the extension, and the gateway reading
    /// that entry streams the service's answers; a bad mode, or streaming an asynchronous call, is
    /// refused before anything is written.
    @Test func registerAStreamedService() async throws {
        let consul = try await ConsulTestServer()
        defer { Task { await consul.shutdown() } }
        let environment = ["HOME": "/nonexistent", "CONSUL_HTTP_ADDR": "127.0.0.1:1"]
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:chat"
        let registered = try await CLI.run(["register", arn, "--gateway", "lambda-gateway", "--invoke-mode", "response_stream", "--consul-addr", consul.baseURL], environment: environment)
        #expect(registered.status == 0, "\(registered.stderr)")
        let defaults = try #require(consul.requests.first { $0.method == "PUT" && $0.path == "/v1/config" }).bodyText
        #expect(defaults.contains(#""InvokeMode":"RESPONSE_STREAM""#))
        let entry = try JSONDecoder().decode(ServiceDefaults.self, from: Data(defaults.utf8))
        #expect(try LambdaSettings.resolve(service: "chat", serviceDefaults: entry, proxyDefaults: nil)?.invokeMode == .responseStream)

        let before = consul.requests.count
        let bad = try await CLI.run(["register", arn, "--gateway", "lambda-gateway", "--invoke-mode", "streaming", "--consul-addr", consul.baseURL], environment: environment)
        #expect(bad.status != 0 && bad.stderr.contains("--invoke-mode must be BUFFERED or RESPONSE_STREAM"))
        let async = try await CLI.run(["register", arn, "--gateway", "lambda-gateway", "--async", "--invoke-mode", "RESPONSE_STREAM", "--consul-addr", consul.baseURL], environment: environment)
        #expect(async.status != 0 && async.stderr.contains("cannot be used with --async"))
        #expect(consul.requests.count == before, "nothing written for a refused command")
    }

    @Test func consulErrorsExitNonZero() async throws {
        var options = ConsulTestServer.Options()
        options.requiredToken = "right"
        let consul = try await ConsulTestServer(options: options)
        defer { Task { await consul.shutdown() } }
        let output = try await CLI.run(
            ["register", "arn:aws:lambda:us-east-1:123456789012:function:orders", "--gateway", "gw", "--consul-addr", consul.baseURL, "--consul-token", "wrong"], environment: ["HOME": "/nonexistent"])
        #expect(output.status == 1)
        #expect(output.stderr.contains("403") && output.stderr.contains("ACL not found"))
    }
}

import Foundation
import Testing
import TestSupport

/// Runs the built `lambda-gateway` executable as a user would.
struct CLI {
    /// The executable sits beside the test bundle in the build folder.
    static var executable: URL {
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
        do {
            try await body(server, try ca.writePEM(to: directory.url))
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
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
        try await withEndpoint({ _ in ScriptedResponse(status: 404, headers: [("X-Amzn-ErrorType", "ResourceNotFoundException")], json: #"{"message":"Function not found: orders"}"#) }) { server, caFile in
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
            let output = try await CLI.run(["invoke", arn, "--endpoint", server.baseURL, "--ca-file", caFile, "--timeout", "2"], environment: ["HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"])
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
}

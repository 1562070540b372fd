import ConsulAPI
import Foundation
import TestSupport
import Testing

/// `lambda-gateway registrator` as a user (or Lambda) runs it: configured from the environment only,
/// against moto's server and the Consul API test server.
@Suite("lambda-gateway registrator", .serialized)
struct RegistratorCommandTests {
    static let enabled = "serverless.consul.hashicorp.com/v1alpha1/lambda/enabled"

    func tag(_ moto: MotoServer, _ function: String = "orders") async throws {
        _ = try await moto.lambdaCommands(#"[{"op":"tag","name":"\#(function)","tags":{"\#(Self.enabled)":"true"}}]"#)
    }

    func managed(_ consul: ConsulTestServer, _ service: String) -> Bool {
        consul.instances(of: service).contains { $0.tags == ["managed-by-lambda-registrator"] }
    }

    @Test func syncPrintsExactlyOneJSONObjectOnStdoutAndASummaryOnStderr() async throws {
        try await RegistratorServers.with { moto, consul, environment in
            try await tag(moto)
            let output = try await CLI.run(["registrator", "sync", "--json"], environment: environment)
            #expect(output.status == 0, "\(output.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["listed", "upserted", "deleted", "skipped", "errors"])
            #expect(object["upserted"] as? Int == 1)
            #expect(output.stdout.split(separator: "\n").count == 1)
            #expect(output.stderr.contains("registrator: listed 1, upserted 1, deleted 0, skipped 0, errors 0"))
            #expect(managed(consul, "orders"))
            // No DATACENTER: the agent's, read once, named on every call.
            #expect(consul.requests.filter { $0.path != "/v1/agent/self" }.allSatisfy { $0.uri.contains("dc=dc1") })
        }
    }

    @Test func aPerFunctionErrorIsReportedAndExitsZero() async throws {
        try await RegistratorServers.with { moto, _, environment in
            _ = try await moto.lambdaCommands(#"[{"op":"tag","name":"orders","tags":{"\#(Self.enabled)":"true","serverless.consul.hashicorp.com/v1alpha1/lambda/invocation-mode":"later"}}]"#)
            let output = try await CLI.run(["registrator", "sync", "--json"], environment: environment)
            #expect(output.status == 0, "\(output.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
            let errors = try #require(object["errors"] as? [[String: String]])
            #expect(errors.count == 1)
            #expect(errors.first?["function"] == "orders")
            #expect(errors.first?["message"]?.contains("\"later\"") == true)
        }
    }

    @Test func aDatacenterTheAgentCannotNameIsASetupError() async throws {
        var options = ConsulTestServer.Options()
        options.tokens = ["t": .init(agentRead: false)]
        try await RegistratorServers.with(options) { _, _, environment in
            var environment = environment
            environment["CONSUL_HTTP_TOKEN"] = "t"
            let output = try await CLI.run(["registrator", "sync"], environment: environment)
            #expect(output.status == 1)
            #expect(output.stderr.contains("DATACENTER is not set"))
        }
    }

    @Test func theConsulTokenComesFromParameterStore() async throws {
        var options = ConsulTestServer.Options()
        options.requiredToken = "from-ssm"
        try await RegistratorServers.with(options) { moto, consul, environment in
            try await tag(moto)
            _ = try await ChildProcess.run(
                [
                    "python3", "-c",
                    "import boto3, sys; boto3.client('ssm', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]).put_parameter(Name='/consul/token', Value='from-ssm', Type='SecureString')",
                    moto.endpoint, moto.fixture.admin.access_key_id, moto.fixture.admin.secret_access_key,
                ]
            )
            var environment = environment
            environment["CONSUL_HTTP_TOKEN_PATH"] = "/consul/token"
            environment["DATACENTER"] = "dc1"
            let output = try await CLI.run(["registrator", "sync"], environment: environment)
            #expect(output.status == 0, "\(output.stderr)")
            #expect(managed(consul, "orders"))
        }
    }

    @Test func eventsFromAFileOrStandardInput() async throws {
        try await RegistratorServers.with { moto, consul, environment in
            try await tag(moto)
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let unsupported = try directory.file("s3.json", contents: #"{"source":"aws.s3"}"#)
            let refused = try await CLI.run(["registrator", "event", unsupported], environment: environment)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("unsupported event source \"aws.s3\""))

            let arn = "arn:aws:lambda:us-east-1:123456789012:function:orders"
            let failedCall = try directory.file(
                "failed.json", contents: #"{"source":"aws.lambda","detail":{"eventName":"TagResource20170331v2","errorCode":"AccessDeniedException","requestParameters":{"resource":"\#(arn)"}}}"#)
            let ignored = try await CLI.run(["registrator", "event", failedCall], environment: environment)
            #expect(ignored.status == 0, "\(ignored.stderr)")
            #expect(!managed(consul, "orders"))

            let tagged = #"{"source":"aws.lambda","detail":{"eventName":"TagResource20170331v2","requestParameters":{"resource":"\#(arn)"}}}"#
            let handled = try await ChildProcess.run([CLI.executable.path, "registrator", "event", "-"], environment: environment, input: tagged)
            #expect(handled.status == 0, "\(handled.stderr)")
            #expect(managed(consul, "orders"))
        }
    }

    @Test func serveSyncsEveryIntervalAndStopsOnSIGTERM() async throws {
        try await RegistratorServers.with { moto, consul, environment in
            try await tag(moto)
            let serve = try RunningProcess([CLI.executable.path, "registrator", "serve", "--interval", "1s"], environment: environment)
            try await withTeardown {
                _ = try await serve.waitForLine(containing: "upserted 1")
                // The next run finds nothing to change.
                _ = try await serve.waitForLine(containing: "upserted 0")
                #expect(managed(consul, "orders"))
                serve.signal(SIGTERM)
                #expect(await serve.waitForExit(timeout: .seconds(20)) == 0)
            } teardown: {
                serve.stop()
            }
        }
    }

    @Test func badIntervalIsRefused() async throws {
        let output = try await CLI.run(["registrator", "serve", "--interval", "10"], environment: ["HOME": "/nonexistent"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("--interval"))
    }
}

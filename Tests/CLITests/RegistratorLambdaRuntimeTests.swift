import Foundation
import NIOConcurrencyHelpers
import TestSupport
import Testing

/// `lambda-gateway registrator lambda` against a stand-in for Lambda's Runtime API
/// (`/2018-06-01/runtime/...`): events in, answers and errors out, setup failures as init errors.
@Suite("lambda-gateway registrator lambda", .serialized)
struct RegistratorLambdaRuntimeTests {
    /// Hands out the queued events one per `next`, then holds `next` open as Lambda does.
    final class RuntimeAPI: Sendable {
        let events: NIOLockedValueBox<[(id: String, body: String)]>
        let server: TestHTTPServer

        init(events: [(String, String)]) async throws {
            let queue = NIOLockedValueBox(events.map { (id: $0.0, body: $0.1) })
            self.events = queue
            server = try await TestHTTPServer { request in
                switch (request.method, request.path) {
                case ("GET", "/2018-06-01/runtime/invocation/next"):
                    guard let event = queue.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) else {
                        return ScriptedResponse(behaviour: .hang)
                    }
                    return ScriptedResponse(headers: [("Lambda-Runtime-Aws-Request-Id", event.id), ("Lambda-Runtime-Deadline-Ms", "9999999999999")], json: event.body)
                case ("POST", _):
                    return ScriptedResponse(status: 202, json: #"{"status":"OK"}"#)
                default:
                    return ScriptedResponse(status: 404)
                }
            }
        }

        var address: String { "127.0.0.1:\(server.port)" }

        func posts(to suffix: String) -> [RecordedRequest] {
            server.requests.filter { $0.method == "POST" && $0.path.hasSuffix(suffix) }
        }
    }

    @Test func eventsAreAnsweredAndABadEventIsAnInvocationError() async throws {
        try await RegistratorServers.with { moto, consul, environment in
            _ = try await moto.lambdaCommands(#"[{"op":"tag","name":"orders","tags":{"serverless.consul.hashicorp.com/v1alpha1/lambda/enabled":"true"}}]"#)
            let runtime = try await RuntimeAPI(events: [("req-1", #"{"source":"aws.events","detail-type":"Scheduled Event"}"#), ("req-2", #"{"source":"aws.s3"}"#)])
            var environment = environment
            environment["AWS_LAMBDA_RUNTIME_API"] = runtime.address
            let process = try RunningProcess([CLI.executable.path, "registrator", "lambda"], environment: environment)
            try await withTeardown {
                let deadline = ContinuousClock.now + .seconds(60)
                while runtime.posts(to: "/req-2/error").isEmpty, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                let answer = try #require(runtime.posts(to: "/invocation/req-1/response").first)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])
                #expect(object["upserted"] as? Int == 1)
                #expect(consul.instances(of: "orders").count == 1)
                let error = try #require(runtime.posts(to: "/invocation/req-2/error").first)
                #expect(error.bodyText.contains("unsupported event source"))
                #expect(error.header("Lambda-Runtime-Function-Error-Type") != nil)
                // Still running, waiting for the next event.
                #expect(await process.waitForExit(timeout: .milliseconds(200)) == nil)
            } teardown: {
                process.stop()
                await runtime.server.shutdown()
            }
        }
    }

    @Test func aSetupFailureIsPostedAsAnInitErrorAndExitsNonZero() async throws {
        try await RegistratorServers.with { _, _, environment in
            let runtime = try await RuntimeAPI(events: [])
            var environment = environment
            environment["AWS_LAMBDA_RUNTIME_API"] = runtime.address
            environment["CONSUL_HTTP_TOKEN_PATH"] = "/consul/no-such-token"
            let output = try await ChildProcess.run([CLI.executable.path, "registrator", "lambda"], environment: environment)
            await runtime.server.shutdown()
            #expect(output.status != 0)
            let initError = try #require(runtime.posts(to: "/runtime/init/error").first)
            #expect(initError.bodyText.contains("CONSUL_HTTP_TOKEN_PATH"))
            #expect(initError.bodyText.contains("ParameterNotFound"))
            #expect(runtime.server.requests.allSatisfy { !$0.path.hasSuffix("/invocation/next") })
        }
    }
}

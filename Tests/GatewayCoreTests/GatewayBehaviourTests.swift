import Foundation
import GatewayCore
import Synchronization
import TestSupport
import Testing

@Suite("Gateway behaviour under change and failure", .serialized)
struct GatewayBehaviourTests {
    @Test func everyInvokeIsSignedCorrectlyAccordingToBotocore() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            _ = try await gateway.curl("orders", path: "/orders/1?x=1", extra: ["-H", "content-type: application/json", "-d", #"{"a":1}"#])
            _ = try await gateway.curl("thumbnails", path: "/t", extra: ["-H", "content-type: application/json", "-d", #"{"b":2}"#])
            #expect(gateway.lambda.requests.count == 2)
            for recorded in gateway.lambda.requests {
                let document: [String: Any] = [
                    "method": recorded.method,
                    "url": gateway.lambda.baseURL + recorded.uri,
                    "headers": recorded.headers.map { [$0.0, $0.1] },
                    "body_base64": Data(recorded.body).base64EncodedString(),
                    "access_key_id": "AKIDEXAMPLE",
                    "secret_access_key": "secret",
                    "region": recorded.uri.contains("eu-west-1") ? "eu-west-1" : "us-east-1",
                    "service": "lambda",
                ]
                let input = try gateway.files.file("sig-\(UUID().uuidString).json", contents: String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self))
                let script = MotoServer.packageRoot.appendingPathComponent("scripts/verify_sigv4.py").path
                let check = try await ChildProcess.run(["sh", "-c", "python3 \(script) < \(input)"])
                #expect(check.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "\(check.stdout) \(check.stderr)")
            }
        }
    }

    /// A body over `offloadedBodyBytes` is made into the payload and hashed on the thread pool, not
    /// on an event loop; the call it makes is signed as correctly as any (botocore says so).
    @Test func aLargeBodyIsPreparedOffTheEventLoopAndSignedCorrectly() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            _ = try await gateway.curl("orders", path: "/small", extra: ["-H", "content-type: application/json", "-d", #"{"a":1}"#])
            #expect(gateway.processor.offloadedPreparationCount == 0)
            let large = #"{"blob":""# + String(repeating: "x", count: 300 * 1024) + #""}"#
            let body = try gateway.files.file("large.json", contents: large)
            let answer = try await gateway.curl("orders", path: "/large", extra: ["-H", "content-type: application/json", "--data-binary", "@\(body)"])
            #expect(answer.status == 201)
            #expect(gateway.processor.offloadedPreparationCount == 1)
            // The function echoes the body, so its answer is as large: decoded on the pool too,
            // from the task that a large body's request runs in.
            #expect(gateway.processor.offloadedAnswerCount == 1)
            #expect(answer.body.contains(String(repeating: "x", count: 300 * 1024)))
            let recorded = try #require(gateway.lambda.requests.last)
            #expect(recorded.body.count > 300 * 1024)
            let document: [String: Any] = [
                "method": recorded.method, "url": gateway.lambda.baseURL + recorded.uri, "headers": recorded.headers.map { [$0.0, $0.1] },
                "body_base64": Data(recorded.body).base64EncodedString(), "access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret",
                "region": "us-east-1", "service": "lambda",
            ]
            let input = try gateway.files.file("sig-large.json", contents: String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self))
            let script = MotoServer.packageRoot.appendingPathComponent("scripts/verify_sigv4.py").path
            let check = try await ChildProcess.run(["sh", "-c", "python3 \(script) < \(input)"])
            #expect(check.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "\(check.stdout) \(check.stderr)")
        }
    }

    /// A Lambda answer of `offloadedBodyBytes` or more is made into the client's response on the
    /// thread pool, not on an event loop (up to 6 MB of JSON and base64 would hold up the loop's
    /// other connections), and arrives whole; a small one is decoded on the loop.
    @Test func aLargeAnswerIsDecodedOffTheEventLoopAndArrivesWhole() async throws {
        let blob = String(repeating: "y", count: 300 * 1024)
        let lambda: TestHTTPServer.Handler = { request in
            let body = request.bodyText.contains("/large") ? blob : "small"
            return ScriptedResponse(headers: [("x-amzn-RequestId", "req-large")], json: #"{"statusCode":200,"headers":{"content-type":"text/plain"},"body":"\#(body)"}"#)
        }
        try await GatewayFixture.with(lambdaHandler: lambda) { gateway in
            let small = try await gateway.curl("orders", path: "/small")
            #expect(small.status == 200 && small.body == "small")
            #expect(gateway.processor.offloadedAnswerCount == 0)
            let large = try await gateway.curl("orders", path: "/large")
            #expect(large.status == 200)
            #expect(large.body == blob, "\(large.body.count) bytes")
            #expect(gateway.processor.offloadedAnswerCount == 1)
            #expect(gateway.processor.inFlightCount == 0)
        }
    }

    @Test func invokesArePooledOverFewConnections() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let host = gateway.tls.sni("orders")
            var extra = ["-H", "content-type: application/json", "-d", "{}"]
            for index in 1..<20 { extra += ["-o", "/dev/null", "https://\(host):\(gateway.port)/r\(index)"] }
            _ = try await gateway.curl("orders", path: "/r0", extra: extra)
            #expect(gateway.lambda.requests.count == 20)
            #expect(gateway.lambda.connectionCount <= 2, "\(gateway.lambda.connectionCount) connections for 20 invokes")
        }
    }

    @Test func consulGoingAwayDoesNotStopServing() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            #expect(try await gateway.curl("orders", path: "/before", extra: ["-X", "POST"]).status == 201)
            let consul = gateway.tls.snapshots.consul
            let before = consul.requests.count
            consul.inject(.status(500, body: "No cluster leader"), count: 100_000, pathPrefix: "/v1/")
            consul.touchConfigTable()
            // The watches have asked again and been answered 500 (every request from now on is).
            try await waitUntil("the watches met the failing agent") { consul.requests.count >= before + 3 }
            for index in 0..<5 {
                #expect(try await gateway.curl("orders", path: "/during/\(index)", extra: ["-X", "POST"]).status == 201)
            }
        }
    }

    @Test func configChangesUnderLoadFailNoRequestOfAServiceThatStaysLinked() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let consul = gateway.tls.snapshots.consul
            let failures = Mutex<[String]>([])
            let sent = Mutex(0)
            // Like a sidecar, the caller keeps its leaf across the CA rotation below (issued by the
            // old root, which stays trusted). A leaf from the new root could reach the gateway before
            // the roots watch does, which no agent produces: it signs with a root it has published.
            let caller = try gateway.tls.clientLeaf("web")
            let load = Task {
                while !Task.isCancelled {
                    do {
                        let answer = try await gateway.curl("orders", path: "/load", leaf: caller, extra: ["-X", "POST"])
                        if answer.status != 201 { failures.withLock { $0.append("status \(answer.status): \(answer.body)") } }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                    sent.withLock { $0 += 1 }
                }
            }
            // Two more requests of the load after each change: the change happens under load, and
            // however slow the machine, the next change waits for them rather than for a time.
            let settle: @Sendable () async throws -> Void = {
                let before = sent.withLock { $0 }
                try await waitUntil("two requests after the change") { sent.withLock { $0 } >= before + 2 }
            }
            // Link a new service, unlink one, rotate a leaf, rotate the roots twice (add, then drop the old one).
            consul.registerInstance("billing")
            try consul.setConfigEntry(
                #"{"Kind":"service-defaults","Name":"billing","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:billing"}}]}"#
            )
            try consul.linkServices(["orders", "thumbnails", "billing"])
            try await gateway.tls.snapshots.waitFor("billing") { $0.services["billing"] != nil }
            try await settle()
            try consul.linkServices(["orders", "billing"])
            try await gateway.tls.snapshots.waitFor("thumbnails gone") { $0.services["thumbnails"] == nil }
            try await settle()
            try consul.rotateLeaf("orders")
            try await settle()
            try consul.rotateRoots()
            try await settle()
            // On a busy machine a curl can take longer than the changes above: let a few more run.
            let enough = ContinuousClock.now + .seconds(10)
            while sent.withLock({ $0 }) < 5 && ContinuousClock.now < enough { try await Task.sleep(for: .milliseconds(50)) }
            load.cancel()
            _ = await load.value
            #expect(sent.withLock { $0 } >= 5)
            #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
            // The new service answers too.
            #expect(try await gateway.curl("billing", path: "/b", extra: ["-X", "POST"]).status == 201)
        }
    }
}

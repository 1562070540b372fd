import ConsulAPI
import Foundation
import Logging
import NIOPosix
import Synchronization
import TestSupport
import Testing
import X509

/// Collects what a watch delivers and reports, with arrival times.
final class WatchRecorder<Value: Sendable>: Sendable {
    let values = Mutex<[(Value, ContinuousClock.Instant)]>([])
    let errors = Mutex<[ConsulError]>([])

    var delivered: [Value] { values.withLock { $0.map(\.0) } }

    func waitFor(count: Int, timeout: Duration = .seconds(5)) async throws {
        let deadline = ContinuousClock.now + timeout
        while values.withLock({ $0.count }) < count {
            guard ContinuousClock.now < deadline else { throw TestSupportError("only \(values.withLock { $0.count }) of \(count) deliveries") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

struct ConsulFixture {
    let server: ConsulTestServer
    let client: ConsulClient

    static func with(options: ConsulTestServer.Options = .init(), environment: [String: String] = [:], _ body: (ConsulFixture) async throws -> Void) async throws {
        let server = try await ConsulTestServer(options: options)
        var env = environment
        env["CONSUL_HTTP_ADDR"] = server.baseURL
        let client = try ConsulClient(configuration: try ConsulConfiguration(environment: env), eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "consul"))
        let fixture = ConsulFixture(server: server, client: client)
        try await withTeardown {
            try await body(fixture)
        } teardown: {
            try? await client.shutdown()
            await server.shutdown()
        }
    }

    func start<Value>(_ endpoint: WatchEndpoint<Value>, policy: BlockingQueryStateMachine.Policy = .init(wait: .seconds(10))) -> (Task<Void, Never>, WatchRecorder<Value>) {
        let recorder = WatchRecorder<Value>()
        let task = Task {
            await client.watch(endpoint, policy: policy, onError: { error in recorder.errors.withLock { $0.append(error) } }) { value, _ in
                recorder.values.withLock { $0.append((value, ContinuousClock.now)) }
            }
        }
        return (task, recorder)
    }

    func requests(to path: String) -> [RecordedRequest] {
        server.requests.filter { $0.path == path }
    }
}

@Suite("Consul watches against the Consul API test server", .serialized)
struct ConsulWatchTests {
    @Test func answersDecodeIncludingARealLeaf() async throws {
        try await ConsulFixture.with { fixture in
            let (roots, metadata) = try await fixture.client.get(CARoots.self, "/v1/agent/connect/ca/roots")
            #expect(roots.TrustDomain == "11111111-2222-3333-4444-555555555555.consul")
            #expect(roots.Roots.count == 1 && roots.Roots[0].Active && roots.Roots[0].ID == roots.ActiveRootID)
            #expect(metadata.index != nil && metadata.defaultACLPolicy == "allow")
            let (leaf, _) = try await fixture.client.get(LeafCertificate.self, "/v1/agent/connect/ca/leaf/orders")
            let certificate = try Certificate(pemEncoded: leaf.CertPEM)
            let uris = try certificate.extensions.subjectAlternativeNames?.compactMap { name -> String? in
                if case .uniformResourceIdentifier(let uri) = name { return uri }
                return nil
            }
            #expect(uris == ["spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/orders"])
            #expect(leaf.ServiceURI == uris?.first)
            #expect(leaf.validBefore! > Date().addingTimeInterval(71 * 3600))
        }
    }

    @Test func aChangeWakesTheLongPollAtOnce() async throws {
        try await ConsulFixture.with { fixture in
            try fixture.server.linkServices(["orders"])
            let (task, recorder) = fixture.start(WatchEndpoint<[GatewayService]>.json("/v1/catalog/gateway-services/lambda-gateway"))
            defer { task.cancel() }
            try await recorder.waitFor(count: 1)
            #expect(recorder.delivered[0].map(\.Service.Name) == ["orders"])
            // Once the server holds the watch's long poll (wait is 10 s), change the data.
            let settled = ContinuousClock.now + .seconds(10)
            while fixture.server.openLongPolls < 1, ContinuousClock.now < settled { try await Task.sleep(for: .milliseconds(5)) }
            #expect(fixture.server.openLongPolls == 1)
            let changed = ContinuousClock.now
            try fixture.server.linkServices(["orders", "thumbnails"])
            try await recorder.waitFor(count: 2)
            let latency = recorder.values.withLock { $0[1].1 } - changed
            #expect(recorder.delivered[1].map(\.Service.Name) == ["orders", "thumbnails"])
            // Far below the 10 s wait the poll was held for: it returned on the write (the issue
            // asks for < 50 ms; the figure is printed, the bound only tells a woken poll from one
            // that ran out, whatever the load on a shared CI machine).
            print("consul watch wake-up latency: \(latency)")
            #expect(latency < .seconds(3))
            let blocking = fixture.requests(to: "/v1/catalog/gateway-services/lambda-gateway").dropFirst()
            #expect(blocking.allSatisfy { $0.uri.contains("index=") && $0.uri.contains("wait=10000ms") })
        }
    }

    @Test func unchangedAnswersAreNotDelivered() async throws {
        try await ConsulFixture.with { fixture in
            try fixture.server.setConfigEntry(#"{"Kind":"service-defaults","Name":"orders","Protocol":"http"}"#)
            let policy = BlockingQueryStateMachine.Policy(wait: .seconds(10), refillInterval: .milliseconds(10))
            let (task, recorder) = fixture.start(WatchEndpoint<[ServiceDefaults]>.json("/v1/config/service-defaults"), policy: policy)
            defer { task.cancel() }
            try await recorder.waitFor(count: 1)
            // Unrelated writes bump the config table and wake the poll with the same data.
            let path = "/v1/config/service-defaults"
            let deadline = ContinuousClock.now + .seconds(10)
            while fixture.requests(to: path).count < 4 && ContinuousClock.now < deadline {
                let before = fixture.requests(to: path).count
                fixture.server.touchConfigTable()
                while fixture.requests(to: path).count == before && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            #expect(fixture.requests(to: path).count >= 4)
            #expect(recorder.delivered.count == 1)
        }
    }

    @Test func missingConfigEntryIsAbsentAndItsCreationWakesTheWatch() async throws {
        try await ConsulFixture.with { fixture in
            let endpoint: WatchEndpoint<ConfigEntryAnswer<ServiceResolver>> = .configEntry(kind: "service-resolver", name: "orders")
            let (task, recorder) = fixture.start(endpoint)
            defer { task.cancel() }
            try await recorder.waitFor(count: 1)
            #expect(recorder.delivered[0] == .absent)
            // The entry is created while the watch's long poll is held, so that the write wakes it.
            try await waitUntil("the watch's long poll is held") { fixture.server.openLongPolls == 1 }
            try fixture.server.setConfigEntry(#"{"Kind":"service-resolver","Name":"orders","RequestTimeout":"30s"}"#)
            try await recorder.waitFor(count: 2)
            #expect(recorder.delivered[1].entry?.RequestTimeout == .seconds(30))
            #expect(recorder.errors.withLock { $0.isEmpty })
        }
    }

    @Test func indexGoingBackwardsRestartsWithAnImmediateQuery() async throws {
        try await ConsulFixture.with { fixture in
            try fixture.server.linkServices(["orders"])
            let (task, recorder) = fixture.start(WatchEndpoint<[GatewayService]>.json("/v1/catalog/gateway-services/lambda-gateway"))
            defer { task.cancel() }
            try await recorder.waitFor(count: 1)
            fixture.server.overrideNextIndex(1)  // a snapshot restore
            try fixture.server.linkServices(["thumbnails"])
            try await recorder.waitFor(count: 2)
            // first (no index), blocking, then the restart without index, then blocking again.
            var uris: [String] = []
            for _ in 0..<2000 {
                uris = fixture.requests(to: "/v1/catalog/gateway-services/lambda-gateway").map(\.uri)
                if uris.count >= 3 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            try #require(uris.count >= 3)
            #expect(!uris[2].contains("index="))
            #expect(recorder.delivered.last?.map(\.Service.Name) == ["thumbnails"])
        }
    }

    @Test func errorsBackOffAndKeepTheLastValue() async throws {
        try await ConsulFixture.with { fixture in
            try fixture.server.linkServices(["orders"])
            let policy = BlockingQueryStateMachine.Policy(wait: .seconds(10), refillInterval: .milliseconds(10), baseBackoff: .milliseconds(100), maximumBackoff: .seconds(1))
            let (task, recorder) = fixture.start(WatchEndpoint<[GatewayService]>.json("/v1/catalog/gateway-services/lambda-gateway"), policy: policy)
            defer { task.cancel() }
            try await recorder.waitFor(count: 1)
            let path = "/v1/catalog/gateway-services/lambda-gateway"
            // Wait until the watch sits in its long poll, so the faults hit the requests after it.
            try await waitUntil("the watch's long poll is held") { fixture.requests(to: path).count >= 2 && fixture.server.openLongPolls >= 1 }
            fixture.server.inject(.status(500, body: "No cluster leader"), count: 3, pathPrefix: "/v1/catalog/gateway-services")
            fixture.server.inject(.malformedBody, count: 1, pathPrefix: "/v1/catalog/gateway-services")
            let before = fixture.requests(to: path).count  // the long poll in flight is counted already
            // The long poll in flight returns the change; the next four requests fail, the fifth blocks.
            try fixture.server.linkServices(["orders", "thumbnails"])
            try await recorder.waitFor(count: 2)
            let deadline = ContinuousClock.now + .seconds(10)
            while fixture.requests(to: path).count < before + 5 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let errors = recorder.errors.withLock { $0 }
            #expect(errors.count == 4)
            #expect(errors.prefix(3).allSatisfy { $0.code == .status(500) && $0.message.contains("No cluster leader") })
            #expect(errors.last?.code == .malformedBody)
            #expect(recorder.delivered.count == 2)  // nothing delivered for the errors
            let times = fixture.requests(to: path).map(\.receivedAt).suffix(5)
            let retryGaps = zip(times.dropFirst(), times).map { $0 - $1 }
            // Backoff d = 0.1, 0.2, 0.4, 0.8 s; each wait is at least d/2.
            for (gap, minimum) in zip(retryGaps, [0.05, 0.1, 0.2, 0.4]) {
                #expect(gap >= .milliseconds(Int(minimum * 1000) - 5), "gaps \(retryGaps)")
            }
        }
    }

    @Test func aConstantlyChangingObjectDoesNotCauseARequestStorm() async throws {
        try await ConsulFixture.with { fixture in
            let policy = BlockingQueryStateMachine.Policy(wait: .seconds(10), burst: 2, refillInterval: .milliseconds(500))
            let (task, recorder) = fixture.start(WatchEndpoint<[ServiceDefaults]>.json("/v1/config/service-defaults"), policy: policy)
            try await recorder.waitFor(count: 1)
            let writes = await fixture.server.churn(service: "orders", perSecond: 500, for: .seconds(2))
            task.cancel()
            #expect(writes > 100)
            let count = fixture.requests(to: "/v1/config/service-defaults").count
            // 1 first request + 2 burst + at most 2 s / 0.5 s refills (+1 for timing edges).
            #expect(count <= 8, "\(count) requests in 2 s")
            #expect(count >= 4)
        }
    }

    @Test func cancellationStopsTheWatchAtOnceAndDeliversNothingMore() async throws {
        try await ConsulFixture.with { fixture in
            try fixture.server.linkServices(["orders"])
            // A minute's wait: ending well before it means the cancellation ended the poll (the bound
            // leaves a busy machine room).
            let (task, recorder) = fixture.start(WatchEndpoint<[GatewayService]>.json("/v1/catalog/gateway-services/lambda-gateway"), policy: .init(wait: .seconds(60)))
            try await recorder.waitFor(count: 1)
            try await waitUntil("the watch's long poll is held") { fixture.server.openLongPolls == 1 }
            let cancelled = ContinuousClock.now
            task.cancel()
            await task.value
            #expect(ContinuousClock.now - cancelled < .seconds(20))
            // The agent holds no poll for it any more, so a change has nobody to go to.
            try await waitUntil("the long poll ended on the agent") { fixture.server.openLongPolls == 0 }
            try fixture.server.linkServices(["thumbnails"])
            #expect(recorder.delivered.count == 1)
            #expect(fixture.server.openLongPolls == 0, "a cancelled watch polls no more")
        }
    }

    @Test func cancellingAWatchEndsItsLongPollOnTheAgent() async throws {
        try await ConsulFixture.with { fixture in
            // The request is cancelled, not left to run out its wait, and the test server sees it go.
            let (task, recorder) = fixture.start(WatchEndpoint<CatalogServices>.json("/v1/catalog/services"), policy: .init(wait: .seconds(60)))
            try await recorder.waitFor(count: 1)
            let deadline = ContinuousClock.now + .seconds(5)
            while fixture.server.openLongPolls == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(fixture.server.openLongPolls == 1)
            task.cancel()
            await task.value
            let cancelled = ContinuousClock.now
            while fixture.server.openLongPolls > 0 && ContinuousClock.now - cancelled < .seconds(30) { try await Task.sleep(for: .milliseconds(10)) }
            #expect(fixture.server.openLongPolls == 0)
            #expect(ContinuousClock.now - cancelled < .seconds(20))
        }
    }

    @Test func aServicesScopeIsSentAndNeverInheritsTheConfiguredNamespace() async throws {
        var options = ConsulTestServer.Options()
        options.enterprise = true
        try await ConsulFixture.with(options: options, environment: ["CONSUL_NAMESPACE": "frontend"]) { fixture in
            for scope in [nil, ConsulScope.default, ConsulScope(namespace: "sales"), ConsulScope(partition: "emea", namespace: "sales")] {
                _ = try await fixture.client.send(.GET, "/v1/catalog/services", scope: scope)
            }
            let sent = fixture.requests(to: "/v1/catalog/services").map { ConsulTestServer.split($0.uri).1.map { "\($0.0)=\($0.1)" } }
            #expect(sent == [["ns=frontend"], ["ns=default"], ["ns=sales"], ["ns=sales", "partition=emea"]])
        }
        try await ConsulFixture.with { fixture in
            // CE: nothing is sent for the default scope (a CE agent refuses any other).
            _ = try await fixture.client.send(.GET, "/v1/catalog/services", scope: .default)
            #expect(fixture.requests(to: "/v1/catalog/services").map(\.uri) == ["/v1/catalog/services"])
        }
    }

    @Test func aclModeRefusesWhatATokenLacksWithConsulsWording() async throws {
        var options = ConsulTestServer.Options()
        options.tokens = ["gateway": .init(accessorID: "4f1c-acc", deniedIntentionReads: ["billing"], agentRead: false)]
        try await ConsulFixture.with(options: options, environment: ["CONSUL_HTTP_TOKEN": "gateway"]) { fixture in
            let (matches, _) = try await fixture.client.get(IntentionMatches.self, "/v1/connect/intentions/match", query: [("by", "destination"), ("name", "orders")])
            #expect(matches.keys.sorted() == ["orders"])
            for (path, query, permission, resource) in [
                ("/v1/connect/intentions/match", [("by", "destination"), ("name", "orders"), ("name", "billing")], "intentions:read", "billing"),
                ("/v1/agent/self", [], "agent:read", "test-agent"),
            ] {
                do throws(ConsulError) {
                    _ = try await fixture.client.send(.GET, path, query: query)
                    Issue.record("\(path) was allowed")
                } catch {
                    #expect(error.isPermissionDenied && !error.isUnknownToken)
                    #expect(error.message.contains(#"Permission denied: token with AccessorID '4f1c-acc' lacks permission '\#(permission)' on "\#(resource)""#), "\(error.message)")
                }
            }
        }
        try await ConsulFixture.with(options: options, environment: ["CONSUL_HTTP_TOKEN": "stranger"]) { fixture in
            do throws(ConsulError) {
                _ = try await fixture.client.get(CARoots.self, "/v1/agent/connect/ca/roots")
                Issue.record("an unknown token was accepted in ACL mode")
            } catch {
                #expect(error.isUnknownToken && !error.isPermissionDenied)
            }
        }
    }

    @Test func tokensAreSentAndUnknownTokensAreErrors() async throws {
        var options = ConsulTestServer.Options()
        options.requiredToken = "s3cr3t"
        try await ConsulFixture.with(options: options, environment: ["CONSUL_HTTP_TOKEN": "s3cr3t"]) { fixture in
            let (roots, _) = try await fixture.client.get(CARoots.self, "/v1/agent/connect/ca/roots")
            #expect(!roots.Roots.isEmpty)
            #expect(fixture.server.requests.allSatisfy { $0.header("x-consul-token") == "s3cr3t" })
        }
        try await ConsulFixture.with(options: options, environment: ["CONSUL_HTTP_TOKEN": "wrong"]) { fixture in
            do throws(ConsulError) {
                _ = try await fixture.client.get(CARoots.self, "/v1/agent/connect/ca/roots")
                Issue.record("a wrong token was accepted")
            } catch {
                #expect(error.code == .status(403) && error.isUnknownToken)
            }
        }
    }

    @Test func aLeafLongPollReturnsWhenTheLeafRotates() async throws {
        try await ConsulFixture.with { fixture in
            let (first, metadata) = try await fixture.client.get(LeafCertificate.self, "/v1/agent/connect/ca/leaf/orders")
            let index = try #require(metadata.index)
            async let blocked = fixture.client.send(.GET, "/v1/agent/connect/ca/leaf/orders", query: [("index", String(index)), ("wait", "5s")], timeout: .seconds(10))
            try await waitUntil("the leaf's long poll is held") { fixture.server.openLongPolls == 1 }
            try fixture.server.rotateLeaf("orders")
            let answer = try await blocked
            #expect(try #require(answer.metadata.index) > index)
            let rotated = try JSONDecoder().decode(LeafCertificate.self, from: Data(answer.body.readableBytesView))
            #expect(rotated.SerialNumber != first.SerialNumber && rotated.ModifyIndex == answer.metadata.index)
        }
    }

    @Test func manyConcurrentLongPollsDoNotStarveEachOther() async throws {
        try await ConsulFixture.with { fixture in
            // More outstanding long polls than AsyncHTTPClient's default pool of 8 per host.
            var tasks: [Task<Void, Never>] = []
            var recorders: [WatchRecorder<ConfigEntryAnswer<ServiceResolver>>] = []
            for number in 0..<20 {
                let (task, recorder) = fixture.start(WatchEndpoint<ConfigEntryAnswer<ServiceResolver>>.configEntry(kind: "service-resolver", name: "s\(number)"))
                tasks.append(task)
                recorders.append(recorder)
            }
            defer { tasks.forEach { $0.cancel() } }
            for recorder in recorders { try await recorder.waitFor(count: 1) }
            // Every connection the client may open holds a long poll (the other polls wait for one),
            // then the write.
            let connections = min(20, ConsulConfiguration.defaultMaximumConnections)
            try await waitUntil("\(connections) long polls held") { fixture.server.openLongPolls >= connections }
            try fixture.server.setConfigEntry(#"{"Kind":"service-resolver","Name":"s19","RequestTimeout":"5s"}"#)
            try await recorders[19].waitFor(count: 2, timeout: .seconds(2))
            #expect(recorders[19].delivered.last?.entry?.RequestTimeout == .seconds(5))
        }
    }

    @Test func aRotatedTokenFileIsReadAgainAfterACLNotFound() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = try directory.file("token", contents: "old-token\n")
        var options = ConsulTestServer.Options()
        options.requiredToken = "new-token"
        try await ConsulFixture.with(options: options, environment: ["CONSUL_HTTP_TOKEN_FILE": tokenFile, "CONSUL_HTTP_TOKEN": "ignored"]) { fixture in
            do throws(ConsulError) {
                _ = try await fixture.client.get(CARoots.self, "/v1/agent/connect/ca/roots")
                Issue.record("the old token was accepted")
            } catch {
                #expect(error.isUnknownToken)
            }
            try "new-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let (roots, _) = try await fixture.client.get(CARoots.self, "/v1/agent/connect/ca/roots")
            #expect(!roots.Roots.isEmpty)
            #expect(fixture.server.requests.map { $0.header("x-consul-token") } == ["old-token", "new-token"])
        }
    }

    @Test func waitParsingAndNotFoundFollowConsul() async throws {
        try await ConsulFixture.with { fixture in
            do throws(ConsulError) {
                _ = try await fixture.client.send(.GET, "/v1/catalog/services", query: [("index", "5"), ("wait", "forever")])
                Issue.record("an invalid wait was accepted")
            } catch {
                #expect(error.code == .status(400) && error.message.contains("Invalid wait time"))
            }
            let missing = try await fixture.client.send(.GET, "/v1/config/service-defaults/nope", allowNotFound: true)
            #expect(missing.status == 404 && missing.metadata.index != nil)
            #expect(String(buffer: missing.body) == #"Config entry not found for "service-defaults" / "nope""#)
        }
    }

    @Test func aHeldPollRunsItsWholeWaitWithOrWithoutJitter() async throws {
        for jitter in [true, false] {
            var options = ConsulTestServer.Options()
            options.waitJitter = jitter
            try await ConsulFixture.with(options: options) { fixture in
                let (_, metadata) = try await fixture.client.get(CatalogServices.self, "/v1/catalog/services")
                let index = try #require(metadata.index)
                var durations: [Duration] = []
                for _ in 0..<4 {
                    let started = ContinuousClock.now
                    _ = try await fixture.client.send(.GET, "/v1/catalog/services", query: [("index", String(index)), ("wait", "320ms")])
                    durations.append(ContinuousClock.now - started)
                }
                // Nothing changed: each poll runs its whole wait, 320 ms plus at most a sixteenth
                // (20 ms) of jitter. The server says what it gave each poll; the clock shows none
                // came back early. (An upper bound on the clock only shows it was not the default
                // 5 minutes: this machine is shared and busy.)
                let given = fixture.server.blockingWaits
                #expect(given.count == 4)
                #expect(given.allSatisfy { jitter ? ($0 >= .milliseconds(320) && $0 <= .milliseconds(340)) : $0 == .milliseconds(320) }, "\(given)")
                #expect(durations.allSatisfy { $0 >= .milliseconds(320) && $0 < .seconds(10) }, "\(durations)")
            }
        }
    }
}

import ConsulAPI
import Foundation
import GatewayCore
import LambdaInvoke
import Logging
import NIOPosix
import TestSupport
import Testing

let ordersDefaults =
    #"{"Kind":"service-defaults","Name":"orders","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Required":false,"Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders","InvocationMode":"synchronous"}}]}"#
let thumbnailsDefaults =
    #"{"Kind":"service-defaults","Name":"thumbnails","Protocol":"http","Meta":{"serverless.consul.hashicorp.com/v1alpha1/lambda/enabled":"true","serverless.consul.hashicorp.com/v1alpha1/lambda/arn":"arn:aws:lambda:eu-west-1:123456789012:function:thumbnails:live","serverless.consul.hashicorp.com/v1alpha1/lambda/region":"eu-west-1","serverless.consul.hashicorp.com/v1alpha1/lambda/payload-passthrough":"true","serverless.consul.hashicorp.com/v1alpha1/lambda/invocation-mode":"ASYNCHRONOUS"}}"#

/// The Consul API test server, a Consul client, and the config source publishing into a store.
struct SnapshotFixture {
    let consul: ConsulTestServer
    let client: ConsulClient
    let store: SnapshotStore
    /// The config source's metrics (Consul watch errors).
    let metrics: GatewayMetrics
    let task: Task<Void, Never>
    /// Each snapshot the store publishes.
    let published: EventSignal
    /// What the config source logs (at info and above).
    let logs: CapturedLogs

    static func with(
        options: ConsulTestServer.Options = .init(),
        token: String? = nil,
        maximumConnections: Int = ConsulConfiguration.defaultMaximumConnections,
        settings adjust: (inout ConsulConfigSource.Settings) -> Void = { _ in },
        prepare: (ConsulTestServer) throws -> Void = { _ in },
        _ body: (SnapshotFixture) async throws -> Void
    ) async throws {
        let consul = try await ConsulTestServer(options: options)
        let logs = CapturedLogs()
        try prepare(consul)
        var environment = ["CONSUL_HTTP_ADDR": consul.baseURL]
        environment["CONSUL_HTTP_TOKEN"] = token
        var configuration = try ConsulConfiguration(environment: environment)
        configuration.maximumConnections = maximumConnections
        let client = try ConsulClient(
            configuration: configuration,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "consul")
        )
        let store = SnapshotStore()
        let metrics = GatewayMetrics()
        var settings = ConsulConfigSource.Settings(
            gatewayName: "lambda-gateway", watchPolicy: .init(wait: .seconds(10), baseBackoff: .milliseconds(50), maximumBackoff: .milliseconds(200)), coalescing: .milliseconds(20)
        )
        // Every leaf read again each second instead of every 4 minutes: the rotation tests see a
        // renewed leaf at once. (The schedule itself is tested on a simulated clock.)
        settings.leafReads.refreshInterval = .seconds(1)
        settings.leafReads.baseBackoff = .milliseconds(50)
        settings.leafReads.maximumBackoff = .milliseconds(200)
        adjust(&settings)
        let source = ConsulConfigSource(
            client: client,
            settings: settings,
            store: store,
            metrics: metrics,
            logger: Logger(label: "snapshot") { label in MultiplexLogHandler([StreamLogHandler.standardError(label: label), CapturedLogs.Handler(logs: logs, logLevel: .info)]) }
        )
        let task = Task { await source.run() }
        // Registered after the start: `waitFor` looks at the snapshot itself before it waits.
        let published = EventSignal()
        store.onPublish { _, _ in published.record() }
        let fixture = SnapshotFixture(consul: consul, client: client, store: store, metrics: metrics, task: task, published: published, logs: logs)
        try await withTeardown {
            try await body(fixture)
        } teardown: {
            await fixture.stop()
        }
    }

    func stop() async {
        task.cancel()
        await task.value
        try? await client.shutdown()
        await consul.shutdown()
    }

    /// Waits until the published snapshot satisfies `condition`.
    @discardableResult
    /// `timeout` only bounds a failure: the whole suite starts at once on two cores, and a
    /// fixture's first snapshot can take seconds then.
    /// Looked at again on each publication, and every 50 ms for a condition on more than the
    /// snapshot (the requests Consul saw).
    func waitFor(_ what: String, timeout: Duration = .seconds(20), _ condition: (GatewaySnapshot) -> Bool) async throws -> GatewaySnapshot {
        var snapshot = store.snapshot
        do {
            try await waitUntil(what, on: published, timeout: timeout, recheck: .milliseconds(50)) {
                snapshot = store.snapshot
                return condition(snapshot)
            }
        } catch is ConditionTimedOut {
            throw TestSupportError("timed out waiting for \(what); served \(snapshot.services.keys.sorted()), not served \(snapshot.notServed)")
        }
        return snapshot
    }

    /// Whether the source has logged a line containing `text`.
    func logged(_ text: String) -> Bool {
        logs.lines.contains { $0.message.contains(text) }
    }

    /// Waits until the source has logged a line containing `text`.
    func waitForLog(_ text: String) async throws {
        try await waitUntil("the log line \"\(text)\"") { logged(text) }
    }
}

func prepareTwoServices(_ consul: ConsulTestServer) throws {
    consul.registerInstance("orders")
    consul.registerInstance("thumbnails")
    try consul.setConfigEntry(ordersDefaults)
    try consul.setConfigEntry(thumbnailsDefaults)
    try consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"web","Action":"allow"}]}"#)
    try consul.linkServices(["orders", "thumbnails"])
}

@Suite("Snapshot assembly against the Consul API test server", .serialized)
struct SnapshotAssemblyTests {
    let trustDomain = "11111111-2222-3333-4444-555555555555.consul"

    @Test func linkedReadyServicesAreServedWithEverythingTheDataPlaneNeeds() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            let snapshot = try await fixture.waitFor("both services") { $0.services.count == 2 }
            #expect(snapshot.trustDomain == trustDomain && snapshot.datacenter == "dc1" && snapshot.rootPEMs.count == 1)
            #expect(snapshot.defaultIntentionPolicy == .allow)
            let orders = try #require(snapshot.service(forSNI: "ORDERS.default.dc1.internal.\(trustDomain)."))
            #expect(orders.name == "orders" && orders.protocolName == "http")
            #expect(orders.lambda.function.description == "arn:aws:lambda:us-east-1:123456789012:function:orders")
            #expect(orders.leaf.serviceURI == "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/orders")
            #expect(orders.leaf.certificatePEM.contains("BEGIN CERTIFICATE") && orders.leaf.privateKeyPEM.contains("PRIVATE KEY"))
            #expect(orders.intentions.map(\.sourceName) == ["web"])
            let thumbnails = try #require(snapshot.services["thumbnails"])
            // Legacy Meta form, and ASYNCHRONOUS read case-insensitively.
            #expect(thumbnails.lambda.invocationType == .event && thumbnails.lambda.passthrough && thumbnails.lambda.region == "eu-west-1")
        }
    }

    /// Unchanged entries reuse the last build's Lambda settings; a changed entry never does.
    @Test func aChangedServiceDefaultsEntryChangesTheSettingsLive() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            try await fixture.waitFor("both services") { $0.services.count == 2 }
            try fixture.consul.setConfigEntry(
                #"{"Kind":"service-defaults","Name":"orders","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders:live","InvocationMode":"asynchronous"}}]}"#
            )
            let changed = try await fixture.waitFor("the new ARN") { $0.services["orders"]?.lambda.function.qualifier == "live" }
            #expect(changed.services["orders"]?.lambda.invocationType == .event)
            #expect(changed.services["thumbnails"]?.lambda.region == "eu-west-1")
            try fixture.consul.setConfigEntry(#"{"Kind":"service-defaults","Name":"orders","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"not an arn"}}]}"#)
            let broken = try await fixture.waitFor("orders not served") { $0.services["orders"] == nil }
            #expect(broken.notServed["orders"]?.kind == .invalidLambdaConfig)
        }
    }

    @Test func linkingAndUnlinkingFollowLive() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            try await fixture.waitFor("both") { $0.services.count == 2 }
            try fixture.consul.linkServices(["orders"])
            let after = try await fixture.waitFor("thumbnails gone") { $0.services["thumbnails"] == nil }
            #expect(after.services["orders"] != nil)
            #expect(after.service(forSNI: "thumbnails.default.dc1.internal.\(trustDomain)") == nil)
            try fixture.consul.linkServices(["orders", "thumbnails"])
            try await fixture.waitFor("thumbnails back") { $0.services["thumbnails"] != nil }
        }
    }

    @Test func servedOnlyOnceReadyWithAnInstance() async throws {
        try await SnapshotFixture.with(prepare: { consul in
            try consul.setConfigEntry(ordersDefaults)
            try consul.linkServices(["orders"])
        }) { fixture in
            let waiting = try await fixture.waitFor("reason") { $0.notServed["orders"]?.text == "no catalog instance" }
            #expect(waiting.services.isEmpty)
            fixture.consul.registerInstance("orders")
            try await fixture.waitFor("orders served") { $0.services["orders"] != nil }
            fixture.consul.deregisterInstance("orders")
            let gone = try await fixture.waitFor("orders not served") { $0.services["orders"] == nil }
            #expect(gone.notServed["orders"] == NotServedReason(.noInstance, "no catalog instance"))
        }
    }

    @Test func invalidLambdaConfigIsLeftOutAndOthersAreServed() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            try await fixture.waitFor("both") { $0.services.count == 2 }
            try fixture.consul.setConfigEntry(
                #"{"Kind":"service-defaults","Name":"thumbnails","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:thumbnails","Region":"us-west-2"}}]}"#
            )
            let snapshot = try await fixture.waitFor("thumbnails left out") { $0.services["thumbnails"] == nil }
            #expect(snapshot.notServed["thumbnails"] == NotServedReason(.invalidLambdaConfig, #"thumbnails: lambda config error: Region "us-west-2" does not match ARN region "us-east-1""#))
            #expect(snapshot.services["orders"] != nil)
            // The metric says why by kind, so "misconfigured" can be alerted on apart from "starting".
            let metrics = PrometheusText(fixture.metrics.exposition(snapshot: snapshot, inFlight: 0))
            #expect(metrics.value("lambda_gateway_services_not_served", ["reason": "invalid_lambda_config"]) == 1)
            #expect(metrics.value("lambda_gateway_services_not_served", ["reason": "waiting"]) == 0)
            #expect(metrics.value("lambda_gateway_services_served") == 1)
        }
    }

    @Test func consulGoingAwayKeepsTheLastSnapshot() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            let before = try await fixture.waitFor("both") { $0.services.count == 2 }
            fixture.consul.inject(.status(500, body: "No cluster leader"), count: 1000, pathPrefix: "/v1/")
            // Wake every watch so that each of them meets the errors.
            fixture.consul.touchConfigTable()
            fixture.consul.registerInstance("unrelated")
            // Until the watches have met the errors: counted, the catalog's among them.
            func errors() -> [String: Double] {
                PrometheusText(fixture.metrics.exposition(snapshot: fixture.store.snapshot, inFlight: 0)).samples.filter { $0.key.hasPrefix("lambda_gateway_consul_watch_errors_total{") }
            }
            try await waitUntil("the watches meet the errors") {
                fixture.consul.requests.filter { $0.path.hasPrefix("/v1/") }.count > 10 && errors().values.reduce(0, +) >= 5
                    && errors().keys.contains(#"lambda_gateway_consul_watch_errors_total{watch="/v1/catalog/services"}"#)
            }
            let during = fixture.store.snapshot
            #expect(during.services.keys.sorted() == ["orders", "thumbnails"])
            #expect(during.version == before.version)
            #expect(fixture.consul.requests.filter { $0.path.hasPrefix("/v1/") }.count > 10)
            // Each failure is counted by watch, with no per-service label (leaf watches share one).
            let errors = errors()
            #expect(errors.values.reduce(0, +) >= 5, "\(errors)")
            #expect(errors.keys.contains(#"lambda_gateway_consul_watch_errors_total{watch="/v1/catalog/services"}"#), "\(errors)")
            #expect(!errors.keys.contains { $0.contains("/leaf/") }, "\(errors)")
        }
    }

    @Test func leafRotationPublishesTheNewLeaf() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            let before = try await fixture.waitFor("both") { $0.services.count == 2 }
            try fixture.consul.rotateLeaf("orders")
            let after = try await fixture.waitFor("new leaf") { $0.services["orders"]?.leaf.serial != before.services["orders"]?.leaf.serial }
            #expect(after.services["orders"]?.leaf.certificatePEM != before.services["orders"]?.leaf.certificatePEM)
            #expect(after.services["thumbnails"]?.leaf == before.services["thumbnails"]?.leaf)
        }
    }

    @Test func rootRotationKeepsBothRootsAndReissuesLeaves() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            let before = try await fixture.waitFor("both") { $0.services.count == 2 }
            try fixture.consul.rotateRoots()
            let during = try await fixture.waitFor("two roots and new leaves") { snapshot in
                snapshot.rootPEMs.count == 2 && snapshot.services["orders"]?.leaf.serial != before.services["orders"]?.leaf.serial
                    && snapshot.services["thumbnails"]?.leaf.serial != before.services["thumbnails"]?.leaf.serial
            }
            #expect(during.activeRootID != before.activeRootID)
            #expect(during.services.count == 2)
        }
    }

    @Test func prunedRootsLeaveOnlyTheActiveRootAndTheLeaves() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            let before = try await fixture.waitFor("both") { $0.services.count == 2 }
            try fixture.consul.rotateRoots()
            // The roots and the re-signed leaves arrive on separate watches: wait for all of them, so
            // the leaf compared below is the one the new root signed.
            let during = try await fixture.waitFor("two roots and new leaves") { snapshot in
                snapshot.rootPEMs.count == 2 && snapshot.services["orders"]?.leaf.serial != before.services["orders"]?.leaf.serial
                    && snapshot.services["thumbnails"]?.leaf.serial != before.services["thumbnails"]?.leaf.serial
            }
            fixture.consul.pruneRoots()
            let after = try await fixture.waitFor("one root") { $0.rootPEMs.count == 1 }
            #expect(after.activeRootID == during.activeRootID)
            #expect(after.rootPEMs == [try fixture.consul.activeRootCA.pem])
            #expect(after.services["orders"]?.leaf == during.services["orders"]?.leaf)
        }
    }

    @Test func resolverSubsetsAddSNIsAndSetTheTimeout() async throws {
        try await SnapshotFixture.with(prepare: prepareTwoServices) { fixture in
            try fixture.consul.setConfigEntry(#"{"Kind":"service-resolver","Name":"orders","RequestTimeout":"1m30s","Subsets":{"v1":{"Filter":"Service.Meta.version == v1"}}}"#)
            let snapshot = try await fixture.waitFor("subset SNI") { $0.services["orders"]?.snis.count == 2 }
            #expect(snapshot.service(forSNI: "v1.orders.default.dc1.internal.\(trustDomain)")?.name == "orders")
            #expect(snapshot.services["orders"]?.requestTimeout == .seconds(90))
        }
    }

    @Test func aNonLambdaOrTCPServiceIsNotServed() async throws {
        try await SnapshotFixture.with(prepare: { consul in
            consul.registerInstance("plain")
            consul.registerInstance("tcp")
            try consul.setConfigEntry(#"{"Kind":"service-defaults","Name":"plain","Protocol":"http"}"#)
            try consul.setConfigEntry(
                #"{"Kind":"service-defaults","Name":"tcp","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:tcp"}}]}"#)
            try consul.linkServices(["plain", "tcp"])
        }) { fixture in
            let snapshot = try await fixture.waitFor("final reasons") {
                $0.notServed["plain"] == NotServedReason(.notLambda, "not a Lambda service")
                    && $0.notServed["tcp"] == NotServedReason(.notHTTP, "protocol is tcp, not http, http2 or grpc")
            }
            #expect(snapshot.services.isEmpty)
        }
    }
    @Test func aRefusedBatchedIntentionsQueryIsSplitSoOnlyTheRefusedServiceIsLeftOut() async throws {
        var options = ConsulTestServer.Options()
        options.tokens = ["gateway": .init(deniedIntentionReads: ["thumbnails"])]
        let prepare = { (consul: ConsulTestServer) in
            try prepareTwoServices(consul)
            // An entry the token may not read: the service-intentions list leaves it out and says
            // so, and the gateway falls back to the match query for the scope.
            try consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"thumbnails","Sources":[{"Name":"web","Action":"allow"}]}"#)
        }
        try await SnapshotFixture.with(options: options, token: "gateway", settings: { $0.intentionsBatchRetry = .milliseconds(300) }, prepare: prepare) { fixture in
            // One name the token may not read makes Consul refuse the whole batch (docs/DECISIONS.md D37).
            let split = try await fixture.waitFor("orders served, thumbnails refused") {
                $0.services["orders"] != nil && $0.notServed["thumbnails"]?.kind == .intentionsForbidden
            }
            #expect(split.services["orders"]?.intentions.count == 1)
            #expect(split.notServed["thumbnails"]?.text.contains("lacks permission 'intentions:read' on \"thumbnails\"") == true, "\(split.notServed)")
            let metrics = PrometheusText(fixture.metrics.exposition(snapshot: split, inFlight: 0))
            #expect(metrics.value("lambda_gateway_services_not_served", ["reason": "intentions_forbidden"]) == 1)

            func intentionQueries() -> [[String]] {
                fixture.matchRequests.map { request in ConsulTestServer.split(request.uri).1.filter { $0.0 == "name" }.map(\.1) }
            }
            #expect(intentionQueries().contains { $0 == ["orders", "thumbnails"] } && intentionQueries().contains { $0 == ["orders"] })

            // Once the permission is granted the batched form comes back (its retry) and, at the
            // next write to the config table, the list is complete: every match watch stops.
            fixture.consul.setTokenRules("gateway", .init())
            try await waitUntil("the batched match query is back", timeout: .seconds(5)) { intentionQueries().last?.count == 2 }
            // A write wakes the list's long poll. The poll asked before the grant answers as its
            // token could read then (filtered); the one asked after it is complete and stops every
            // match watch.
            let lists = fixture.listRequests.count
            fixture.consul.touchConfigTable()
            try await waitUntil("the list asked again, under the grant") { fixture.listRequests.count > lists }
            fixture.consul.touchConfigTable()
            let both = try await fixture.waitFor("both served") { $0.services.count == 2 }
            #expect(both.services["thumbnails"]?.intentions.map(\.sourceName) == ["web"])
            // The complete list stops the match query, and its long poll ends on the agent.
            try await fixture.waitForLog("the intentions match query stops")
            try await waitUntil("no match query held") { !fixture.consul.heldLongPolls.contains { $0.hasPrefix("/v1/connect/intentions/match") } }
            // A watch told to stop between two of its polls may still send one more request within
            // a task hop (its answer is dropped): the count is taken once that moment has passed
            // and no match query is held again.
            try await Task.sleep(for: .milliseconds(200))
            try await waitUntil("no match query held, after the last hop") { !fixture.consul.heldLongPolls.contains { $0.hasPrefix("/v1/connect/intentions/match") } }
            let queriesBefore = intentionQueries().count
            // Writes to the config table wake every intentions long poll that is still open. No
            // event says that a stopped query stays stopped: a short look after each write.
            for _ in 0..<3 {
                fixture.consul.touchConfigTable()
                try await Task.sleep(for: .milliseconds(150))
            }
            #expect(intentionQueries().count == queriesBefore)
        }
    }

    @Test func theAgentsDefaultIntentionPolicyComesBeforeTheHeaderUntilItIsRefused() async throws {
        var options = ConsulTestServer.Options()
        options.defaultACLPolicy = "allow"
        options.agentDefaultIntentionPolicy = "deny"
        options.tokens = ["gateway": .init()]
        try await SnapshotFixture.with(options: options, token: "gateway", settings: { $0.agentSelfInterval = .milliseconds(100) }, prepare: prepareTwoServices) { fixture in
            try await fixture.waitFor("agent's deny") { $0.services.count == 2 && $0.defaultIntentionPolicy == .deny }
            // Re-read on its interval: an agent without a policy of its own leaves it to the header.
            fixture.consul.setAgentDefaultIntentionPolicy("")
            try await fixture.waitFor("header's allow") { $0.defaultIntentionPolicy == .allow }
            fixture.consul.setAgentDefaultIntentionPolicy("deny")
            try await fixture.waitFor("agent's deny again") { $0.defaultIntentionPolicy == .deny }
            // A token without agent:read turns the source off for good; the header decides.
            fixture.consul.setTokenRules("gateway", .init(agentRead: false))
            try await fixture.waitFor("header's allow after the 403") { $0.defaultIntentionPolicy == .allow }
            let reads = fixture.consul.requests.filter { $0.path == "/v1/agent/self" }.count
            fixture.consul.setTokenRules("gateway", .init())
            // Nothing to wait for: four of the 100 ms intervals pass without a read.
            try await Task.sleep(for: .milliseconds(400))
            #expect(fixture.consul.requests.filter { $0.path == "/v1/agent/self" }.count == reads)
            #expect(fixture.store.snapshot.defaultIntentionPolicy == .allow)
        }
    }

    @Test func aConfiguredDefaultPolicyIsNeverOverridden() async throws {
        var options = ConsulTestServer.Options()
        options.defaultACLPolicy = "deny"
        options.agentDefaultIntentionPolicy = "deny"
        try await SnapshotFixture.with(
            options: options,
            settings: {
                $0.defaultIntentionPolicy = .allow
                $0.agentSelfInterval = .milliseconds(50)
            }, prepare: prepareTwoServices
        ) { fixture in
            let snapshot = try await fixture.waitFor("both") { $0.services.count == 2 }
            #expect(snapshot.defaultIntentionPolicy == .allow)
            #expect(fixture.consul.requests.filter { $0.path == "/v1/agent/self" }.isEmpty)
        }
    }
    @Test func enterpriseServicesAreWatchedPerPartitionAndNamespace() async throws {
        var options = ConsulTestServer.Options()
        options.enterprise = true
        let emea = ConsulScope(partition: "emea", namespace: "sales")
        let sales = ConsulScope(namespace: "sales")
        func lambda(_ name: String, _ function: String, _ scope: ConsulScope) -> String {
            #"{"Kind":"service-defaults","Name":"\#(name)","Namespace":"\#(scope.namespace)","Partition":"\#(scope.partition)","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:\#(function)"}}]}"#
        }
        // Enough connections for the three scopes' long polls (21) and the leaf reads: with the
        // default 16, a leaf read could wait for a 10 s poll to end.
        try await SnapshotFixture.with(
            options: options,
            maximumConnections: 32,
            prepare: { consul in
                consul.registerInstance("orders")
                consul.registerInstance("orders", scope: emea)
                consul.registerInstance("billing", scope: sales)
                try consul.setConfigEntry(ordersDefaults)
                try consul.setConfigEntry(lambda("orders", "orders-emea", emea))
                try consul.setConfigEntry(lambda("billing", "billing", sales))
                try consul.setConfigEntry(#"{"Kind":"service-resolver","Name":"orders","Namespace":"sales","Partition":"emea","Subsets":{"v2":{}}}"#)
                try consul.setConfigEntry(
                    #"{"Kind":"service-intentions","Name":"orders","Namespace":"sales","Partition":"emea","Sources":[{"Name":"web","Namespace":"frontend","Partition":"emea","Action":"allow"}]}"#)
                try consul.linkServices(scoped: [("orders", .default), ("orders", emea), ("billing", sales)])
            }
        ) { fixture in
            let snapshot = try await fixture.waitFor("three services in three scopes") { $0.services.count == 3 }
            #expect(snapshot.services.keys.sorted() == ["default/sales/billing", "emea/sales/orders", "orders"])
            // SNIs and SPIFFE IDs as Consul forms them (the subset's as in SPIFFEAndSNITests).
            let emeaOrders = try #require(snapshot.services["emea/sales/orders"])
            #expect(emeaOrders.snis == ["orders.sales.emea.dc1.internal-v1.\(trustDomain)", "v2.orders.sales.emea.dc1.internal-v1.\(trustDomain)"])
            #expect(snapshot.service(forSNI: "v2.orders.sales.emea.dc1.internal-v1.\(trustDomain)")?.key == "emea/sales/orders")
            #expect(snapshot.service(forSNI: "billing.sales.dc1.internal.\(trustDomain)")?.key == "default/sales/billing")
            #expect(snapshot.service(forSNI: "orders.default.dc1.internal.\(trustDomain)")?.key == "orders")
            #expect(emeaOrders.leaf.serviceURI == "spiffe://\(trustDomain)/ap/emea/ns/sales/dc/dc1/svc/orders")
            #expect(snapshot.services["default/sales/billing"]?.leaf.serviceURI == "spiffe://\(trustDomain)/ns/sales/dc/dc1/svc/billing")
            // Each scope's own service-defaults and intentions.
            #expect(emeaOrders.lambda.function.description.hasSuffix(":orders-emea"))
            #expect(snapshot.services["orders"]?.lambda.function.description.hasSuffix(":orders") == true)
            #expect(emeaOrders.intentions.map(\.sourceNamespace) == ["frontend"])
            #expect(snapshot.services["orders"]?.intentions.isEmpty == true)

            // One list watch per scope in use, each asking only for its own scope's names.
            func scopes(of path: String) -> Set<String> {
                Set(
                    fixture.consul.requests.filter { $0.path == path }.map { request in
                        let query = ConsulTestServer.split(request.uri).1
                        return "\(query.first { $0.0 == "partition" }?.1 ?? "-")/\(query.first { $0.0 == "ns" }?.1 ?? "-")"
                    })
            }
            #expect(scopes(of: "/v1/catalog/services") == ["-/-", "-/sales", "emea/sales"])
            #expect(scopes(of: "/v1/config/service-defaults") == ["-/-", "-/sales", "emea/sales"])
            // Intentions: the service-intentions list of each scope, and no match query (issue 23).
            #expect(scopes(of: "/v1/config/service-intentions") == ["-/-", "-/sales", "emea/sales"])
            #expect(fixture.matchRequests.isEmpty)

            // Unlinking the only service of a scope stops that scope's watches.
            try fixture.consul.linkServices(scoped: [("orders", .default), ("billing", sales)])
            try await fixture.waitFor("emea gone") { $0.services["emea/sales/orders"] == nil && $0.services.count == 2 }
            // A request a stopped watch had on its way is recorded first. No event says there is
            // none (a stopped watch's poll stays held on the agent until a write ends it).
            try await Task.sleep(for: .milliseconds(100))
            let emeaRequests = fixture.consul.requests.filter { $0.uri.contains("partition=emea") }.count
            // The writes wake every watch still running. No event says that a stopped one stays
            // stopped: a short look after each write.
            for _ in 0..<3 {
                fixture.consul.touchConfigTable()
                fixture.consul.registerInstance("unrelated")
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(fixture.consul.requests.filter { $0.uri.contains("partition=emea") }.count == emeaRequests)
        }
    }
}

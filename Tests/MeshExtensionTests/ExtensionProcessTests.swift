import Foundation
import TestSupport
import Testing

/// The built `lambda-mesh-extension` against the Extensions API stand-in, moto's Parameter Store,
/// a mesh gateway that routes by SNI and an mTLS upstream (README.md, `lambda-mesh-extension`; its
/// differences table, row 15: the reference's tests never made a TLS dial).
@Suite(.serialized) struct ExtensionProcessTests {
    /// Starts the extension and waits for its first `event/next` (the end of its Init).
    static func ready(_ harness: ExtensionHarness, _ overrides: [String: String?] = [:], awsEndpoint: String? = nil) async throws -> RunningProcess {
        let process = try harness.start(harness.environment(overrides, awsEndpoint: awsEndpoint))
        do {
            _ = try await harness.api.waitForRequest("/event/next", timeout: .seconds(30))
        } catch {
            process.stop()
            throw TestSupportError("\(error)\n\(process.output.joined(separator: "\n"))")
        }
        return process
    }

    @Test func aConnectionIsTunnelledOverVerifiedMTLSWithTheUpstreamsSNIAndHalfCloses() async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            let process = try await Self.ready(harness)
            defer { process.stop() }
            #expect(harness.api.requests(to: "/register").first?.header("Lambda-Extension-Name") == "lambda-mesh-extension")
            #expect(harness.api.requests(to: "/register").first?.bodyText.contains("INVOKE") == true)

            let client = try LocalClient(port: harness.ordersPort)
            defer { client.close() }
            client.send("hello\n")
            #expect(client.read(count: 6) == "hello\n")
            // The function's FIN reaches the upstream (as close_notify), whose answer and FIN come back.
            client.shutdownWrite()
            #expect(client.readToEnd() == "bye\n")

            #expect(harness.gateway.snis == [ExtensionHarness.ordersSNI])
            #expect(harness.upstream.clientURIs == [[ExtensionHarness.callerID]], "the function's leaf is the client certificate")
        }
    }

    @Test func everyRootInTheDataIsTrustedNotOnlyTheFirst() async throws {
        try await withExtension { harness in
            // During a CA rotation the registrator writes every root, the new one first (docs/DECISIONS.md
            // D47): a peer whose leaf is from the older root must still be accepted.
            try await harness.putCallerData(roots: [try TestCA(commonName: "Consul CA 8"), harness.ca])
            let process = try await Self.ready(harness)
            defer { process.stop() }
            let client = try LocalClient(port: harness.ordersPort)
            defer { client.close() }
            client.send("hello\n")
            #expect(client.read(count: 6) == "hello\n")
        }
    }

    @Test func aGatewayThatNeverAnswersTheHandshakeIsGivenUpAfterTheDialTimeout() async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            // A socket that listens but never accepts: TCP connects (the kernel's backlog), TLS never answers.
            let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { Glibc.close(silent) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(silent, $0, length) } }
            _ = listen(silent, 16)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(silent, $0, &length) } }
            let port = Int(UInt16(bigEndian: address.sin_port))

            let process = try await Self.ready(harness, ["CONSUL_MESH_GATEWAY_URI": "127.0.0.1:\(port)", "CONSUL_EXTENSION_DIAL_TIMEOUT": "500ms"])
            defer { process.stop() }
            let started = ContinuousClock.now
            let client = try LocalClient(port: harness.ordersPort)
            defer { client.close() }
            client.send("hello\n")
            #expect(client.readToEnd() == "", "closed, not left waiting")
            #expect(ContinuousClock.now - started >= .milliseconds(450))
            _ = try await process.waitForLine(containing: "within 500 ms")
        }
    }

    @Test func listenersAreBoundOnLoopbackOnly() async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            let process = try await Self.ready(harness)
            defer { process.stop() }
            // /proc/net/tcp: local address 0100007F (127.0.0.1) with our port, listening (0A).
            let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
            let port = String(format: "%04X", harness.ordersPort)
            let listening = table.split(separator: "\n").map { $0.split(separator: " ") }.filter { $0.count > 3 && $0[1].hasSuffix(":\(port)") && $0[3] == "0A" }
            #expect(listening.map { String($0[1]) } == ["0100007F:\(port)"])
        }
    }

    @Test func theDataIsReadBeforeTheFirstEventNext() async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            // Parameter Store behind a proxy that fails the first two reads: Init retries, and
            // asks for the first event only after the read that worked.
            let proxy = try await FaultProxy(forwardingTo: harness.moto.endpoint)
            try await withTeardown(
                {
                    proxy.add(.serviceError(count: 2) { $0.header("X-Amz-Target")?.hasSuffix("GetParameter") == true })
                    let process = try await Self.ready(harness, awsEndpoint: proxy.endpoint)
                    defer { process.stop() }
                    let reads = proxy.requests.filter { $0.header("X-Amz-Target")?.hasSuffix("GetParameter") == true }
                    #expect(reads.count >= 3)
                    let firstEvent = try #require(harness.api.requests(to: "/event/next").first)
                    #expect(reads.allSatisfy { $0.receivedAt < firstEvent.receivedAt })
                    // And the listener accepts at once.
                    let client = try LocalClient(port: harness.ordersPort)
                    defer { client.close() }
                    client.send("ping\n")
                    #expect(client.read(count: 5) == "ping\n")
                }, teardown: { await proxy.shutdown() })
        }
    }

    @Test func missingDataIsReportedAsDataUnavailableBeforeAnyEvent() async throws {
        try await withExtension { harness in
            let process = try harness.start(harness.environment())
            defer { process.stop() }
            #expect(await process.waitForExit(timeout: .seconds(30)) == 1)
            let report = try #require(harness.api.requests(to: "/init/error").first)
            #expect(report.header("Lambda-Extension-Function-Error-Type") == "Extension.DataUnavailable")
            #expect(report.header("Lambda-Extension-Identifier") == ExtensionsAPIStandIn.identifier)
            #expect(report.bodyText.contains(ExtensionHarness.parameter))
            #expect(harness.api.requests(to: "/event/next").isEmpty)
            #expect((try? LocalClient(port: harness.ordersPort)) == nil, "no listener was opened")
        }
    }

    @Test func anExpiredCertificateInTheDataIsDataUnavailable() async throws {
        try await withExtension { harness in
            try await harness.putCallerData(notValidAfter: Date().addingTimeInterval(-60))
            let process = try harness.start(harness.environment())
            defer { process.stop() }
            #expect(await process.waitForExit(timeout: .seconds(30)) == 1)
            let report = try #require(harness.api.requests(to: "/init/error").first)
            #expect(report.header("Lambda-Extension-Function-Error-Type") == "Extension.DataUnavailable")
            #expect(report.bodyText.contains("expired"))
        }
    }

    @Test(
        arguments: [
            ["CONSUL_MESH_GATEWAY_URI": nil],
            ["CONSUL_SERVICE_UPSTREAMS": "orders:notaport"],
            ["CONSUL_REFRESH_FREQUENCY": "often"],
        ] as [[String: String?]])
    func aConfigurationErrorIsReportedAfterRegistering(_ overrides: [String: String?]) async throws {
        try await withExtension { harness in
            let process = try harness.start(harness.environment(overrides))
            defer { process.stop() }
            #expect(await process.waitForExit(timeout: .seconds(30)) == 1)
            let paths = harness.api.requests.map(\.path)
            #expect(paths == ["/2020-01-01/extension/register", "/2020-01-01/extension/init/error"])
            let report = try #require(harness.api.requests(to: "/init/error").first)
            #expect(report.header("Lambda-Extension-Function-Error-Type") == "Extension.ConfigInvalid")
            #expect(report.bodyText.contains(overrides.keys.first!))
        }
    }

    @Test func aPortInUseIsListenerFailed() async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            let taken = try await TestHTTPServer { _ in ScriptedResponse() }
            try await withTeardown(
                {
                    let process = try harness.start(harness.environment(["CONSUL_SERVICE_UPSTREAMS": "orders:\(taken.port)"]))
                    defer { process.stop() }
                    #expect(await process.waitForExit(timeout: .seconds(30)) == 1)
                    let report = try #require(harness.api.requests(to: "/init/error").first)
                    #expect(report.header("Lambda-Extension-Function-Error-Type") == "Extension.ListenerFailed")
                    #expect(report.bodyText.contains("127.0.0.1:\(taken.port)"))
                }, teardown: { await taken.shutdown() })
        }
    }

    /// With the sidecar presenting `upstreamLeaf`, a function's connection is closed without a
    /// byte either way, and the extension logs `logged`.
    static func expectRefused(upstreamLeaf: @escaping (TestCA) throws -> TestLeaf, logged: String) async throws {
        try await withExtension(upstreamLeaf: upstreamLeaf) { harness in
            try await harness.putCallerData()
            let process = try await Self.ready(harness)
            defer { process.stop() }
            let client = try LocalClient(port: harness.ordersPort)
            defer { client.close() }
            client.send("secret\n")
            #expect(client.readToEnd() == "", "closed without a byte")
            #expect(harness.upstream.bytesReceived == 0, "nothing of the function's reached the wrong peer")
            _ = try await process.waitForLine(containing: logged)
        }
    }

    @Test func aPeerWithAnotherServicesIdentityIsRefused() async throws {
        let billing = "spiffe://\(ExtensionHarness.trustDomain)/ns/default/dc/dc1/svc/billing"
        try await Self.expectRefused(
            upstreamLeaf: { ca in try ca.issueLeaf(commonName: "billing", dnsNames: [], ipAddresses: [], uris: [billing]) },
            logged: "not \(ExtensionHarness.ordersID)"
        )
    }

    @Test func aPeerFromAnotherCAIsRefused() async throws {
        let foreign = try TestCA(commonName: "someone else")
        try await Self.expectRefused(
            upstreamLeaf: { _ in try foreign.issueLeaf(commonName: "orders", dnsNames: [], ipAddresses: [], uris: [ExtensionHarness.ordersID]) },
            logged: "cannot open a tunnel"
        )
    }

    @Test func aWarmSpareIsReadyBeforeTheFirstConnectionAndReplacedAfterIt() async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            let process = try await Self.ready(harness, ["CONSUL_EXTENSION_WARM_CONNECTIONS": "1", "TRACE_ENABLED": "true", "LOG_LEVEL": "debug"])
            defer { process.stop() }
            try await eventually { harness.upstream.handshakes == 1 }
            let client = try LocalClient(port: harness.ordersPort)
            defer { client.close() }
            client.send("hello\n")
            #expect(client.read(count: 6) == "hello\n")
            // TRACE_ENABLED: per-phase timings at debug level.
            _ = try await process.waitForLine(containing: "phase=mTLS data")
            #expect(try await process.waitForLine(containing: "tunnel open").contains("spare=true"))
            // The spare carried it; one more is dialled in its place, not two.
            try await eventually { harness.upstream.handshakes == 2 }
            // Nothing to wait for: a third dial would come at once, so a short look is enough.
            try await Task.sleep(for: .milliseconds(300))
            #expect(harness.upstream.handshakes == 2)
        }
    }

    @Test func aFailedRefreshKeepsTheCachedDataAndNewDataReachesNewDialsOnly() async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            let proxy = try await FaultProxy(forwardingTo: harness.moto.endpoint)
            try await withTeardown(
                {
                    let process = try await Self.ready(harness, ["CONSUL_REFRESH_FREQUENCY": "1s"], awsEndpoint: proxy.endpoint)
                    defer { process.stop() }
                    let isRead: @Sendable (RecordedRequest) -> Bool = { $0.header("X-Amz-Target")?.hasSuffix("GetParameter") == true }
                    proxy.add(.serviceError(isRead))
                    let open = try LocalClient(port: harness.ordersPort)
                    defer { open.close() }
                    open.send("one\n")
                    #expect(open.read(count: 4) == "one\n")
                    _ = try await process.waitForLine(containing: "keeping the cached data")
                    #expect(process.output.allSatisfy { !$0.contains("Extension.") }, "the extension keeps running")
                    // Still tunnels with the cached data.
                    let during = try LocalClient(port: harness.ordersPort)
                    during.send("two\n")
                    #expect(during.read(count: 4) == "two\n")
                    during.close()

                    // New data, Parameter Store back: a new dial presents the new leaf; the open tunnel is untouched.
                    try await harness.putCallerData()
                    proxy.clearRules()
                    _ = try await process.waitForLine(containing: "new mTLS data", timeout: .seconds(90))
                    let after = try LocalClient(port: harness.ordersPort)
                    defer { after.close() }
                    after.send("three\n")
                    #expect(after.read(count: 6) == "three\n")
                    let serials = harness.upstream.clientSerials
                    #expect(Set(serials).count == 2 && serials.last != serials.first)
                    open.send("four\n")
                    #expect(open.read(count: 5) == "four\n")
                }, teardown: { await proxy.shutdown() })
        }
    }

    @Test func anExpiredCachedCertificateClosesNewConnections() async throws {
        try await withExtension { harness in
            let expiry = Date().addingTimeInterval(4)
            try await harness.putCallerData(notValidAfter: expiry)
            let process = try await Self.ready(harness)
            defer { process.stop() }
            let before = try LocalClient(port: harness.ordersPort)
            before.send("hi\n")
            #expect(before.read(count: 3) == "hi\n")
            before.close()
            // Until the certificate has expired (its time in whole seconds, hence the second more).
            try await Task.sleep(for: .seconds(max(expiry.timeIntervalSinceNow + 1, 0)))
            let dials = harness.gateway.connectionCount
            let after = try LocalClient(port: harness.ordersPort)
            defer { after.close() }
            #expect(after.readToEnd() == "")
            _ = try await process.waitForLine(containing: "certificate expired")
            #expect(harness.gateway.connectionCount == dials, "no dial with an expired certificate")
        }
    }

    /// A ready extension (debug log) with one tunnel open, a line echoed through it.
    static func withOpenTunnel(_ body: (ExtensionHarness, RunningProcess, LocalClient) async throws -> Void) async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            let process = try await Self.ready(harness, ["LOG_LEVEL": "debug"])
            defer { process.stop() }
            await harness.api.sendInvoke()
            let open = try LocalClient(port: harness.ordersPort)
            open.send("a\n")
            #expect(open.read(count: 2) == "a\n")
            try await body(harness, process, open)
        }
    }

    @Test func shutdownStopsAcceptingDrainsOpenTunnelsAndExitsZero() async throws {
        try await Self.withOpenTunnel { harness, process, open in
            defer { open.close() }
            let deadline = Date().addingTimeInterval(2)
            await harness.api.sendShutdown(deadline: deadline)
            _ = try await process.waitForLine(containing: "SHUTDOWN")
            #expect((try? LocalClient(port: harness.ordersPort)) == nil, "no more connections are accepted")
            open.send("b\n")
            #expect(open.read(count: 2) == "b\n", "the open tunnel runs on")
            #expect(await process.waitForExit(timeout: .seconds(10)) == 0)
            // Closed by 200 ms before the deadline, not long after it (NIOSSL's default wait of 5 s
            // for the peer's close_notify once held it well past: TunnelTLS sets 150 ms).
            #expect(Date() < deadline.addingTimeInterval(1.5), "\(process.output.joined(separator: "\n"))")
            #expect(open.readToEnd() == "")
        }
    }

    /// Shutdown waits for the open tunnels, not for its deadline: the last one to close ends it.
    @Test func shutdownEndsWhenTheLastOpenTunnelClosesBeforeTheDeadline() async throws {
        try await Self.withOpenTunnel { harness, process, open in
            let deadline = Date().addingTimeInterval(8)
            await harness.api.sendShutdown(deadline: deadline)
            _ = try await process.waitForLine(containing: "SHUTDOWN")
            open.close()
            #expect(await process.waitForExit(timeout: .seconds(10)) == 0)
            #expect(Date() < deadline.addingTimeInterval(-4), "\(process.output.joined(separator: "\n"))")
        }
    }

    @Test func sigtermIsAShutdownWithHalfASecond() async throws {
        try await withExtension { harness in
            try await harness.putCallerData()
            let process = try await Self.ready(harness)
            defer { process.stop() }
            let started = ContinuousClock.now
            process.signal(SIGTERM)
            #expect(await process.waitForExit(timeout: .seconds(10)) == 0)
            #expect(ContinuousClock.now - started < .seconds(3))
        }
    }
}

/// Waits up to 10 s for `condition`.
func eventually(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TestSupportError("condition not met within 10 s") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

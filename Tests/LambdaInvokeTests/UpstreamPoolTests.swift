import AWSCredentials
import LambdaPayload
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import TestSupport
import Testing

@testable import LambdaInvoke

@Suite("Upstream pool bookkeeping")
struct UpstreamPoolStateTests {
    final class Conn {
        let name: String
        init(_ name: String) { self.name = name }
    }
    typealias State = UpstreamPoolState<Conn, String>
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func opensUpToTheLimitThenQueues() {
        var state = State(limit: 2)
        #expect(isConnect(state.lease(waiter: "a", prefer: { _ in false })))
        #expect(isConnect(state.lease(waiter: "b", prefer: { _ in false })))
        guard case .wait(let id) = state.lease(waiter: "c", prefer: { _ in false }) else {
            Issue.record("the third caller should wait")
            return
        }
        #expect(id == 1)
        #expect(state.open == 2)
        #expect(state.waiters.map(\.waiter) == ["c"])
        // Asking without a waiter does not queue anything.
        guard case .wait(nil) = state.lease(waiter: nil, prefer: { _ in false }) else {
            Issue.record("a caller without a waiter is told to wait, with no id")
            return
        }
        #expect(state.waiters.count == 1)
    }

    @Test func aReleasedConnectionGoesToTheFirstWaiterElseIdle() {
        var state = State(limit: 1)
        let one = Conn("one")
        _ = state.lease(waiter: nil, prefer: { _ in false })
        _ = state.lease(waiter: "first", prefer: { _ in false })
        _ = state.lease(waiter: "second", prefer: { _ in false })
        guard case .connection(let waiter, let connection) = state.released(one, reusable: true, now: t0) else {
            Issue.record("the first waiter should get the connection")
            return
        }
        #expect(waiter == "first" && connection === one)
        #expect(state.removeWaiter(id: 2) == "second")
        #expect(state.removeWaiter(id: 2) == nil)
        #expect(isNone(state.released(one, reusable: true, now: t0)))
        #expect(state.idle.count == 1)
        guard case .use(let again) = state.lease(waiter: nil, prefer: { _ in false }) else {
            Issue.record("the idle connection should be used")
            return
        }
        #expect(again === one)
        #expect(state.open == 1)
    }

    @Test func theMostRecentIdleConnectionOnThePreferredLoopIsTaken() {
        var state = State(limit: 3)
        let (a, b, c) = (Conn("a"), Conn("b"), Conn("c"))
        for _ in 0..<3 { _ = state.lease(waiter: nil, prefer: { _ in false }) }
        for connection in [a, b, c] { _ = state.released(connection, reusable: true, now: t0) }
        guard case .use(let preferred) = state.lease(waiter: nil, prefer: { $0 === a }) else {
            Issue.record("expected a connection")
            return
        }
        #expect(preferred === a)
        guard case .use(let recent) = state.lease(waiter: nil, prefer: { _ in false }) else {
            Issue.record("expected a connection")
            return
        }
        #expect(recent === c)
    }

    @Test func aClosedConnectionFreesItsSlotForAWaiter() {
        var state = State(limit: 1)
        let one = Conn("one")
        _ = state.lease(waiter: nil, prefer: { _ in false })
        _ = state.lease(waiter: "waiting", prefer: { _ in false })
        // Not reusable: nothing is handed over until the close arrives.
        #expect(isNone(state.released(one, reusable: false, now: t0)))
        guard case .connect(let waiter) = state.closed(one) else {
            Issue.record("the waiter should open a connection")
            return
        }
        #expect(waiter == "waiting")
        #expect(state.open == 1)
        #expect(state.waiters.isEmpty)
    }

    @Test func anIdleConnectionClosedByTheEndpointLeavesThePool() {
        var state = State(limit: 2)
        let one = Conn("one")
        _ = state.lease(waiter: nil, prefer: { _ in false })
        _ = state.released(one, reusable: true, now: t0)
        #expect(isNone(state.closed(one)))
        #expect(state.idle.isEmpty && state.open == 0)
        // A failed connect gives its slot back too.
        _ = state.lease(waiter: nil, prefer: { _ in false })
        #expect(isNone(state.closed(nil)))
        #expect(state.open == 0)
    }

    @Test func idleConnectionsExpireByAge() {
        var state = State(limit: 3)
        let (old, fresh) = (Conn("old"), Conn("fresh"))
        for _ in 0..<2 { _ = state.lease(waiter: nil, prefer: { _ in false }) }
        _ = state.released(old, reusable: true, now: t0)
        _ = state.released(fresh, reusable: true, now: t0 + .seconds(50))
        let expired = state.expire(before: t0 + .seconds(30))
        #expect(expired.map(\.name) == ["old"])
        #expect(state.idle.map(\.connection.name) == ["fresh"])
        // Still open until its close is seen.
        #expect(state.open == 2)
    }

    @Test func shutDownHandsBackWaitersAndIdleConnectionsAndRefusesLeases() {
        var state = State(limit: 2)
        let (a, b) = (Conn("a"), Conn("b"))
        for _ in 0..<2 { _ = state.lease(waiter: nil, prefer: { _ in false }) }
        _ = state.released(a, reusable: true, now: t0)
        _ = state.lease(waiter: nil, prefer: { _ in false })  // takes a
        _ = state.lease(waiter: "late", prefer: { _ in false })
        let (waiters, idle) = state.shutDown()
        #expect(waiters == ["late"] && idle.isEmpty)
        guard case .close(let closing) = state.released(b, reusable: true, now: t0) else {
            Issue.record("a busy connection is closed when it finishes")
            return
        }
        #expect(closing === b)
        guard case .shutDown = state.lease(waiter: nil, prefer: { _ in false }) else {
            Issue.record("no lease after shut down")
            return
        }
        // No waiter is given a slot after shut down.
        #expect(isNone(state.closed(b)))
    }

    func isConnect(_ action: State.LeaseAction) -> Bool { if case .connect = action { true } else { false } }
    func isNone(_ handOver: State.HandOver) -> Bool { if case .none = handOver { true } else { false } }
}

@Suite("Upstream pool against a local endpoint")
struct UpstreamPoolTests {
    @Test func aPooledConnectionLostAfterTheRequestWasWrittenIsNotSentAgain() async throws {
        // The second request on the first connection is read by the endpoint, which then closes
        // without answering: the function may have run, so a second attempt could run it twice.
        let seen = Mutex(0)
        try await InvokeFixture.with(handler: { request in
            let n = seen.withLock { n in
                n += 1
                return n
            }
            return n == 2 ? ScriptedResponse(behaviour: .closeWithoutResponse) : ScriptedResponse(json: #"{"n":\#(n)}"#)
        }) { fixture in
            _ = try await fixture.invoke()
            let error = await expectInvokeError(.connectionLost) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
            #expect(error?.message.contains("may have run") == true, "\(String(describing: error))")
            #expect(fixture.server.requests.map(\.connectionNumber) == [1, 1])
            // The pool goes on with a new connection.
            let result = try await fixture.invoke()
            #expect(String(buffer: result.payload) == #"{"n":3}"#)
            #expect(fixture.server.requests.map(\.connectionNumber) == [1, 1, 2])
        }
    }

    @Test func aNewConnectionClosedWithoutAnAnswerIsNotRetried() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(behaviour: .closeWithoutResponse) }) { fixture in
            let error = await expectInvokeError(.connectionLost) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
            #expect(error?.message.contains("before answering") == true, "\(String(describing: error))")
            #expect(fixture.server.requests.count == 1)
        }
    }

    @Test func connectionCloseFromTheEndpointIsHonoured() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(headers: [("Connection", "close")], json: "{}") }) { fixture in
            for _ in 0..<3 { _ = try await fixture.invoke() }
            #expect(fixture.server.requests.map(\.connectionNumber) == [1, 2, 3])
        }
    }

    @Test func connectionsTheEndpointClosesWhileIdleAreReplaced() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(body: Array("{}".utf8), behaviour: .respondThenClose) }) { fixture in
            let pool = try fixture.client.pools.pool(for: fixture.server.baseURL)
            for _ in 0..<5 {
                _ = try await fixture.invoke()
                // The close is seen while the connection is idle: it leaves the pool, rather than
                // waiting there to fail the next call (which the stale-connection retry would hide).
                let deadline = ContinuousClock.now + .seconds(2)
                while pool.counts != (idle: 0, open: 0) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
                #expect(pool.counts == (idle: 0, open: 0))
            }
            #expect(fixture.server.requests.map(\.connectionNumber) == [1, 2, 3, 4, 5])
        }
    }

    @Test func idleConnectionsAreClosedAfterTheIdleTimeout() async throws {
        try await InvokeFixture.with(configuration: { $0.idleTimeout = .milliseconds(200) }, handler: { _ in ScriptedResponse(json: "{}") }) { fixture in
            let pool = try fixture.client.pools.pool(for: fixture.server.baseURL)
            _ = try await fixture.invoke()
            _ = try await fixture.invoke()
            try await waitUntil("the idle connection is closed") { pool.counts == (idle: 0, open: 0) }
            _ = try await fixture.invoke()
            #expect(fixture.server.requests.map(\.connectionNumber) == [1, 1, 2])
        }
    }

    @Test func aCallWaitingForABusyConnectionTimesOut() async throws {
        // The first call's answer waits for the test, not for a time the waiter's timeout races.
        let answer = Gate()
        try await InvokeFixture.with(
            configuration: { $0.maximumConnectionsPerHost = 1 },
            handler: { _ in
                await answer.wait()
                return ScriptedResponse(json: "{}")
            }
        ) { fixture in
            defer { answer.open() }
            let slowFinished = Mutex(false)
            async let slow: Void = {
                _ = try await fixture.invoke()
                slowFinished.withLock { $0 = true }
            }()
            try await waitUntil("the first call holds the only connection") { fixture.server.requests.count == 1 }
            _ = await expectInvokeError(.timeout) { () async throws(LambdaInvokeError) in try await fixture.invoke(timeout: .milliseconds(200)) }
            // The waiter gave up at its own deadline, while the only connection was still busy: it
            // did not wait for the connection to come free.
            #expect(!slowFinished.withLock { $0 })
            // The first call keeps its connection and completes; the waiter never got on the wire.
            answer.open()
            try await slow
            #expect(fixture.server.requests.count == 1)
        }
    }

    @Test func callsBeyondTheLimitWaitTheirTurn() async throws {
        try await InvokeFixture.with(configuration: { $0.maximumConnectionsPerHost = 2 }, handler: { _ in ScriptedResponse(json: "{}", delay: .milliseconds(20)) }) { fixture in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 { group.addTask { _ = try await fixture.invoke() } }
                try await group.waitForAll()
            }
            #expect(fixture.server.requests.count == 20)
            #expect(fixture.server.connectionCount == 2)
        }
    }

    @Test func afterShutdownCallsAreRefused() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(json: "{}") }) { fixture in
            _ = try await fixture.invoke()
            try await fixture.client.shutdown()
            let error = await expectInvokeError(.endpointUnreachable) { () async throws(LambdaInvokeError) in try await fixture.invoke() }
            #expect(error?.message.contains("shutting down") == true)
            #expect(fixture.server.requests.count == 1)
        }
    }

    /// The callback form, as the gateway calls it from a connection's event loop: refused after
    /// the shutdown too, on that loop, with nothing sent.
    @Test func afterShutdownCallsFromAnEventLoopAreRefusedOnIt() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(json: "{}") }) { fixture in
            _ = try await fixture.invoke()
            try await fixture.client.shutdown()
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            // Called from the loop, as the form requires (an early refusal is answered at once).
            let answered = await withCheckedContinuation { continuation in
                loop.execute {
                    fixture.client.invoke(InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}")), on: loop) { result in
                        continuation.resume(returning: (loop.inEventLoop, result))
                    }
                }
            }
            #expect(answered.0, "answered on the caller's loop")
            guard case .failure(let error) = answered.1 else {
                Issue.record("a call after the shutdown was answered: \(answered.1)")
                return
            }
            #expect(error.code == .endpointUnreachable && error.message.contains("shutting down"), "\(error)")
            #expect(fixture.server.requests.count == 1)
        }
    }

    @Test(arguments: [
        ("not http at all\r\n\r\n", "malformed"),
        ("HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", "malformed"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "before the answer was complete"),
        // Framing that two readers could take two ways is refused, not guessed at.
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}", "both Content-Length and Transfer-Encoding"),
        ("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", "folded"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}", "before the answer was complete"),
    ])
    func garbageFromTheEndpointIsAConnectionError(answer: String, expected: String) async throws {
        let server = try await RawTCPServer(answer: answer)
        let client = try server.client()
        try await withTeardown {
            // The deadline only bounds a hang: the answer comes at once, but a loaded machine (the
            // full suite, two cores) has taken over 5 s to connect and exchange on 127.0.0.1.
            let error = await expectInvokeError(.connectionLost) { () async throws(LambdaInvokeError) in
                try await client.invoke(InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), timeout: .seconds(60)))
            }
            #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
        } teardown: {
            try? await client.shutdown()
            try? await server.channel.close()
        }
    }
}

extension UpstreamPoolTests {
    /// Without a length or chunks, the connection's end ends the answer (RFC 9112 §6.3): the
    /// answer is whole, and the connection is not pooled again.
    @Test func anAnswerFramedByTheConnectionsEndIsWhole() async throws {
        let server = try await RawTCPServer(answer: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"whole\":true}")
        let client = try server.client()
        try await withTeardown {
            let result = try await client.invoke(InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), timeout: .seconds(60)))
            #expect(result.statusCode == 200)
            #expect(String(buffer: result.payload) == #"{"whole":true}"#)
        } teardown: {
            try? await client.shutdown()
            try? await server.channel.close()
        }
    }
}

/// A plaintext TCP server that answers whatever arrives with fixed bytes, then closes.
struct RawTCPServer {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    init(answer: String) async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Answer(bytes: answer)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// An Invoke client whose endpoint is this server.
    func client() throws -> LambdaInvokeClient {
        try LambdaInvokeClient(
            configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(customEndpoint: "http://127.0.0.1:\(port)")),
            credentials: StaticCredentialSource(testCredentials),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
    }

    final class Answer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let bytes: String
        var answered = false
        init(bytes: String) { self.bytes = bytes }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            answered = true
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: bytes))).whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@Suite("Upstream request encoding")
struct UpstreamRequestEncoderTests {
    @Test func aValueIsUnsafeWithACarriageReturnLineFeedOrNulAnywhereAndSafeWithATab() {
        let clean = "0123456789abcdefghijklmnopqrstu"
        for position in 0...clean.count {
            for bad in ["\r", "\n", "\u{0}"] {
                var text = clean
                text.insert(Character(bad), at: text.index(text.startIndex, offsetBy: position))
                #expect(!HTTPField.hasNoLineBreakOrNUL(text), "\(bad.debugDescription) at \(position)")
            }
            var tabbed = clean
            tabbed.insert("\t", at: tabbed.index(tabbed.startIndex, offsetBy: position))
            #expect(HTTPField.hasNoLineBreakOrNUL(tabbed), "a tab at \(position)")
        }
        #expect(HTTPField.hasNoLineBreakOrNUL(""))
        #expect(HTTPField.hasNoLineBreakOrNUL("AWS4-HMAC-SHA256 Credential=AKID/20261207/us-east-1/lambda/aws4_request, SignedHeaders=host"))
        #expect(!HTTPField.hasNoLineBreakOrNUL("valueé\u{0}"), "a non-ASCII byte (0xC3, over 127) before a NUL")
    }

    @Test func aRequestIsOneBufferAndAFieldThatCouldSplitItIsLeftOut() {
        let fields = [("Host", "lambda.us-east-1.amazonaws.com"), ("X-Amz-Security-Token", "abc\r\nx-injected: 1"), ("Content-Length", "2")]
        let request = UpstreamRequestEncoder.encode(method: .POST, target: "/2015-03-31/functions/f/invocations", fields: fields, body: ByteBuffer(string: "{}"))
        #expect(String(buffer: request.bytes) == "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: lambda.us-east-1.amazonaws.com\r\nContent-Length: 2\r\n\r\n{}")
        #expect(request.largeBody == nil && !request.isHEAD)
        // The Invoke call's own names are literals, unchecked; their values are checked all the same.
        let literal: [(StaticString, String)] = [("Host", "lambda"), ("X-Amzn-Trace-Id", "Root=1\r\nx-injected: 1"), ("Content-Length", "2")]
        let invoke = UpstreamRequestEncoder.encode(method: .POST, target: "/f", fields: literal, body: ByteBuffer(string: "{}"))
        #expect(String(buffer: invoke.bytes) == "POST /f HTTP/1.1\r\nHost: lambda\r\nContent-Length: 2\r\n\r\n{}")
    }

    @Test func aLargeBodyFollowsTheHeadUncopied() {
        let body = ByteBuffer(repeating: 0x61, count: UpstreamRequestEncoder.coalescedBodyLimit + 1)
        let request = UpstreamRequestEncoder.encode(method: .POST, target: "/", fields: [("Content-Length", "\(body.readableBytes)")], body: body)
        #expect(String(buffer: request.bytes) == "POST / HTTP/1.1\r\nContent-Length: 16385\r\n\r\n")
        #expect(request.largeBody == body)
        // The same storage, not a copy of it.
        let original = body.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(request.largeBody?.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == original)
        #expect(UpstreamRequestEncoder.encode(method: .HEAD, target: "/", fields: [] as [(String, String)], body: ByteBuffer()).isHEAD)
    }
}

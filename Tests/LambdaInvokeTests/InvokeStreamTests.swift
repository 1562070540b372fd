import Foundation
import LambdaInvoke
import LambdaPayload
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

/// `InvokeWithResponseStream` against an HTTPS stand-in whose frames come from
/// `scripts/eventstream_frames.py` (encoded by Python, each checked by botocore's own decoder), sent
/// as chunks of the stand-in's own cutting.
@Suite("Streamed Invoke calls")
struct InvokeStreamTests {
    typealias Message = (headers: [(String, String, Any)], payload: [UInt8])

    static func chunk(_ text: String) -> Message {
        ([(":event-type", "string", "PayloadChunk"), (":content-type", "string", "application/octet-stream"), (":message-type", "string", "event")], Array(text.utf8))
    }

    /// What a stream that completed sends: every field present, empty.
    static var complete: Message { ([(":event-type", "string", "InvokeComplete"), (":message-type", "string", "event")], Array(#"{"ErrorCode":"","ErrorDetails":"","LogResult":""}"#.utf8)) }

    static func frames(_ messages: [Message]) async throws -> [UInt8] {
        let json = messages.map { ["headers": $0.headers.map { [$0.0, $0.1, $0.2] }, "payload": Data($0.payload).base64EncodedString()] as [String: Any] }
        let script = MotoServer.packageRoot.appendingPathComponent("scripts/eventstream_frames.py").path
        let output = try await ChildProcess.run(["python3", script], input: String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self))
        #expect(output.status == 0, "\(output.stderr)")
        return Array(try #require(Data(base64Encoded: output.stdout)))
    }

    /// `bytes` cut into pieces of `size` (the last shorter): frames split across chunks.
    static func cut(_ bytes: [UInt8], every size: Int) -> [[UInt8]] {
        stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
    }

    static func streamed(_ pieces: [[UInt8]], contentType: String = "application/vnd.amazon.eventstream", pause: Duration = .zero, thenClose: Bool = false) -> ScriptedResponse {
        ScriptedResponse(headers: [("Content-Type", contentType), ("x-amzn-RequestId", "stream-1")], behaviour: .chunked(pieces: pieces, pause: pause, thenClose: thenClose))
    }

    /// The events of one streamed call, in order.
    final class Recorder: Sendable {
        let events = Mutex<[String]>([])
        let payload = Mutex<[UInt8]>([])
        let held = Mutex(0)
        let start = Mutex<InvokeStreamStart?>(nil)
        let ended = AsyncStream<Void>.makeStream()

        func record(_ event: InvokeStreamEvent) {
            switch event {
            case .started(let start):
                self.start.withLock { $0 = start }
                events.withLock { $0.append("started \(start.contentType ?? "-") \(start.requestID ?? "-")") }
            case .payload(let bytes, let heldBytes):
                payload.withLock { $0 += bytes.readableBytesView }
                held.withLock { $0 += heldBytes }
                events.withLock { $0.append("payload") }
            case .completed(let completion):
                events.withLock { $0.append("completed \(completion.errorCode ?? "-")") }
                ended.continuation.yield()
            case .failed(let error):
                events.withLock { $0.append("failed \(error.errorName)") }
                ended.continuation.yield()
            }
        }

        func waitForEnd() async {
            for await _ in ended.stream { return }
        }

        var text: String { String(decoding: payload.withLock { $0 }, as: UTF8.self) }
        var log: [String] { events.withLock { $0 } }
    }

    static func call(_ fixture: InvokeFixture, budget: ResponseBudget? = nil, timeout: Duration = .seconds(60)) async -> Recorder {
        let recorder = Recorder()
        let request = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), timeout: timeout, budget: budget)
        fixture.client.invokeStreaming(request, on: MultiThreadedEventLoopGroup.singleton.any()) { recorder.record($0) }
        await recorder.waitForEnd()
        return recorder
    }

    @Test func piecesArriveInOrderHoweverTheFramesAreCut() async throws {
        let bytes = try await Self.frames([Self.chunk("data: one\n\n"), Self.chunk("data: two\n\n"), Self.chunk(""), Self.chunk("data: three\n\n"), Self.complete])
        for size in [1, 7, 16, bytes.count] {
            try await InvokeFixture.with(handler: { _ in Self.streamed(Self.cut(bytes, every: size)) }) { fixture in
                let recorder = await Self.call(fixture)
                #expect(recorder.text == "data: one\n\ndata: two\n\ndata: three\n\n", "cut every \(size)")
                #expect(recorder.log.first == "started - stream-1", "the envelope's type is not the function's")
                #expect(recorder.log.last == "completed -", "an InvokeComplete with empty fields is a success")
                let sent = try #require(fixture.server.requests.first)
                #expect(sent.path == "/2021-11-15/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders%3Alive/response-streaming-invocations")
                #expect(sent.header("x-amz-invocation-type") == "RequestResponse")
                #expect(sent.header("authorization")?.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type") == true)
            }
        }
    }

    /// botocore signs the same request the same way (the path of the streaming operation included).
    @Test func theStreamingCallIsSignedAsBotocoreSignsIt() async throws {
        let bytes = try await Self.frames([Self.chunk("x"), Self.complete])
        try await InvokeFixture.with(handler: { _ in Self.streamed([bytes]) }) { fixture in
            _ = await Self.call(fixture)
            let recorded = try #require(fixture.server.requests.first)
            let document: [String: Any] = [
                "method": recorded.method, "url": fixture.server.baseURL + recorded.uri, "headers": recorded.headers.map { [$0.0, $0.1] },
                "body_base64": Data(recorded.body).base64EncodedString(), "access_key_id": testCredentials.accessKeyID,
                "secret_access_key": testCredentials.secretAccessKey, "region": "us-east-1", "service": "lambda",
            ]
            let script = MotoServer.packageRoot.appendingPathComponent("scripts/verify_sigv4.py").path
            let check = try await ChildProcess.run(["python3", script], input: String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self))
            #expect(check.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "\(check.stdout) \(check.stderr)")
        }
    }

    @Test func theFunctionsOwnContentTypeAndAMidStreamFunctionError() async throws {
        let failing: Message = ([(":event-type", "string", "InvokeComplete"), (":message-type", "string", "event")], Array(#"{"ErrorCode":"Unhandled","ErrorDetails":"boom"}"#.utf8))
        let bytes = try await Self.frames([Self.chunk("partial"), failing])
        try await InvokeFixture.with(handler: { _ in Self.streamed([bytes], contentType: "text/plain") }) { fixture in
            let recorder = await Self.call(fixture)
            #expect(recorder.log == ["started text/plain stream-1", "payload", "completed Unhandled"])
        }
    }

    @Test func aStreamThatBreaksOffFailsAfterItStarted() async throws {
        let complete = try await Self.frames([Self.chunk("one"), Self.chunk("two"), Self.complete])
        let noEnd = try await Self.frames([Self.chunk("one")])
        var corrupt = try await Self.frames([Self.chunk("one"), Self.chunk("two")])
        corrupt[corrupt.count - 1] ^= 0xFF
        let cases: [(String, ScriptedResponse, [String])] = [
            ("closed mid-stream", Self.streamed([Array(complete.prefix(30))], thenClose: true), ["started - stream-1", "failed UpstreamConnectionError"]),
            ("cut inside a frame", Self.streamed([Array(complete.prefix(30))]), ["started - stream-1", "failed UpstreamConnectionError"]),
            ("no InvokeComplete", Self.streamed([noEnd]), ["started - stream-1", "payload", "failed UpstreamConnectionError"]),
            ("bad checksum", Self.streamed([corrupt]), ["started - stream-1", "payload", "failed UpstreamConnectionError"]),
        ]
        for (name, response, expected) in cases {
            try await InvokeFixture.with(handler: { _ in response }) { fixture in
                let recorder = await Self.call(fixture)
                #expect(recorder.log == expected, "\(name)")
            }
        }
    }

    @Test func anErrorBeforeTheStreamIsAnOrdinaryLambdaError() async throws {
        let missing = ScriptedResponse(status: 404, headers: [("X-Amzn-ErrorType", "ResourceNotFoundException")], json: #"{"message":"Function not found"}"#)
        try await InvokeFixture.with(handler: { _ in missing }) { fixture in
            let recorder = await Self.call(fixture)
            #expect(recorder.log == ["failed ResourceNotFoundException"])
        }
    }

    @Test func theDeadlineCoversTheWholeStream() async throws {
        let bytes = try await Self.frames([Self.chunk("one"), Self.chunk("two"), Self.chunk("three"), Self.complete])
        // The answer takes at least 6 s (three pauses of 2 s); the first piece comes at once, well
        // within the 3 s deadline even on a loaded machine.
        try await InvokeFixture.with(handler: { _ in Self.streamed(Self.cut(bytes, every: 40), pause: .seconds(2)) }) { fixture in
            let recorder = await Self.call(fixture, timeout: .seconds(3))
            #expect(recorder.log.first == "started - stream-1")
            #expect(recorder.log.last == "failed UpstreamTimeout")
        }
    }

    /// A cancel that comes after the stream completed (a receiver abandoning it late) leaves the
    /// pooled connection, now idle or carrying another call, alone.
    @Test func aLateCancelNeverClosesTheConnectionForTheNextCall() async throws {
        let bytes = try await Self.frames([Self.chunk("one"), Self.complete])
        try await InvokeFixture.with(handler: { request in
            request.path.hasSuffix("/response-streaming-invocations") ? Self.streamed([bytes]) : ScriptedResponse(json: #"{"ok":true}"#, delay: .milliseconds(300))
        }) { fixture in
            let recorder = await Self.call(fixture)
            #expect(recorder.log.last == "completed -")
            let start = try #require(recorder.start.withLock { $0 })
            try await waitUntil("the connection is back in the pool") { fixture.client.poolStatistics.idle == 1 }
            async let buffered = fixture.invoke()
            try await waitUntil("the buffered call is on the wire") { fixture.server.requests.count == 2 }
            start.cancel()
            let result = try await buffered
            #expect(result.statusCode == 200 && String(buffer: result.payload) == #"{"ok":true}"#)
            #expect(fixture.server.connectionCount == 1, "the one pooled connection carried both calls")
        }
    }

    /// A message larger than the client's budget still passes: bytes of a message not yet complete
    /// are not counted, so reading goes on until it is.
    @Test func aMessageLargerThanTheBudgetDoesNotStallTheStream() async throws {
        let big = String(repeating: "m", count: 100 * 1024)
        let bytes = try await Self.frames([Self.chunk(big), Self.chunk("after"), Self.complete])
        try await InvokeFixture.with(handler: { _ in Self.streamed(Self.cut(bytes, every: 4096)) }) { fixture in
            let budget = ResponseBudget(limit: 16 * 1024)
            let recorder = Recorder()
            let request = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), timeout: .seconds(30), budget: budget)
            fixture.client.invokeStreaming(request, on: MultiThreadedEventLoopGroup.singleton.any()) { event in
                recorder.record(event)
                // Written at once, as a client that reads.
                if case .payload(_, let held) = event { budget.release(held) }
            }
            await recorder.waitForEnd()
            #expect(recorder.log == ["started - stream-1", "payload", "payload", "completed -"])
            #expect(recorder.payload.withLock { $0.count } == big.utf8.count + 5)
            #expect(budget.held == 0, "every byte taken was given back")
        }
    }

    @Test func streamsOverTheLimitAreRefusedAtOnceAndBufferedCallsStillPass() async throws {
        let bytes = try await Self.frames([Self.chunk("one"), Self.chunk("two"), Self.complete])
        try await InvokeFixture.with(
            configuration: { $0.maximumConcurrentStreams = 1 },
            handler: { request in
                request.path.hasSuffix("/response-streaming-invocations") ? Self.streamed(Self.cut(bytes, every: 60), pause: .milliseconds(300)) : ScriptedResponse(json: "{}")
            }
        ) { fixture in
            let first = Recorder()
            fixture.client.invokeStreaming(InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), timeout: .seconds(30)), on: MultiThreadedEventLoopGroup.singleton.any()) {
                first.record($0)
            }
            try await waitUntil("the first stream started") { first.log.first?.hasPrefix("started") == true }
            let second = await Self.call(fixture)
            #expect(second.log == ["failed TooManyStreams"])
            #expect(try await fixture.invoke().statusCode == 200, "a buffered call is not a stream")
            await first.waitForEnd()
            #expect(first.log.last == "completed -")
            // The slot is given back when the call is over (its connection released), just after.
            try await waitUntil("the first call is over") { fixture.client.streamsInProgress == 0 }
            #expect(await Self.call(fixture).log.last == "completed -", "the slot is free again")
        }
    }

    /// One connection (one budget) may have `maximumStreamsPerConnection` streams at once; another
    /// connection's stream still passes, so one caller cannot take every slot.
    @Test func oneConnectionMayHoldOnlyItsShareOfTheStreams() async throws {
        let bytes = try await Self.frames([Self.chunk("one"), Self.chunk("two"), Self.complete])
        try await InvokeFixture.with(configuration: { $0.maximumStreamsPerConnection = 1 }, handler: { _ in Self.streamed(Self.cut(bytes, every: 60), pause: .milliseconds(300)) }) { fixture in
            let connection = ResponseBudget(limit: 1 << 20)
            let first = Recorder()
            let request = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), timeout: .seconds(30), budget: connection)
            fixture.client.invokeStreaming(request, on: MultiThreadedEventLoopGroup.singleton.any()) { event in
                if case .payload(_, let held) = event { connection.release(held) }
                first.record(event)
            }
            try await waitUntil("the first stream started") { first.log.first?.hasPrefix("started") == true }
            #expect(await Self.call(fixture, budget: connection).log == ["failed TooManyStreams"], "the same connection")
            #expect(await Self.call(fixture, budget: ResponseBudget(limit: 1 << 20)).log.last == "completed -", "another connection")
            await first.waitForEnd()
            try await waitUntil("the first call is over") { fixture.client.streamsInProgress == 0 }
            #expect(await Self.call(fixture, budget: connection).log.last == "completed -", "the connection's slot is free again")
        }
    }

    /// A call cancelled before Lambda answered at all (its caller went away while the function had
    /// not begun) ends at once and frees its stream slot, instead of waiting for the deadline.
    @Test func aCallCancelledBeforeItsAnswerEndsAtOnce() async throws {
        try await InvokeFixture.with(handler: { _ in ScriptedResponse(behaviour: .hang) }) { fixture in
            let recorder = Recorder()
            let loop = MultiThreadedEventLoopGroup.singleton.any()
            let request = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), timeout: .seconds(60))
            let handle = try await loop.submit { fixture.client.invokeStreaming(request, on: loop) { recorder.record($0) } }.get()
            try await waitUntil("the call is on the wire") { fixture.server.requests.count == 1 }
            #expect(fixture.client.streamsInProgress == 1)
            try await loop.submit { handle.cancel() }.get()
            await recorder.waitForEnd()
            #expect(recorder.log == ["failed UpstreamConnectionError"])
            try await waitUntil("the slot is free") { fixture.client.streamsInProgress == 0 }
        }
    }

    /// A receiver that holds what it was given holds the budget: reading from Lambda stops until it
    /// gives bytes back, so a slow client never makes the gateway hold more than its limit and a piece.
    @Test func readingWaitsWhileTheBudgetIsSpent() async throws {
        let piece = String(repeating: "p", count: 16 * 1024)
        let bytes = try await Self.frames(Array(repeating: Self.chunk(piece), count: 64) + [Self.complete])
        try await InvokeFixture.with(handler: { _ in Self.streamed(Self.cut(bytes, every: 16 * 1024 + 100)) }) { fixture in
            let budget = ResponseBudget(limit: 64 * 1024)
            let recorder = Recorder()
            let held = Mutex(0)
            let request = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), timeout: .seconds(60), budget: budget)
            fixture.client.invokeStreaming(request, on: MultiThreadedEventLoopGroup.singleton.any()) { event in
                if case .payload(_, let heldBytes) = event { held.withLock { $0 += heldBytes } }
                recorder.record(event)
            }
            // Nothing is given back: the stream stalls with about the limit held.
            try await waitUntil("the budget is spent") { budget.isSpent }
            try await Task.sleep(for: .milliseconds(300))
            let stalled = recorder.payload.withLock { $0.count }
            #expect(stalled < 64 * piece.count / 2, "reading went on with the budget spent: \(stalled) bytes")
            #expect(budget.peak <= 64 * 1024 + 128 * 1024, "peak \(budget.peak)")
            // Giving back what was handed over lets it go on to the end.
            let release = Task {
                while !Task.isCancelled {
                    let bytes = held.withLock { value in
                        defer { value = 0 }
                        return value
                    }
                    if bytes > 0 { budget.release(bytes) }
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            await recorder.waitForEnd()
            release.cancel()
            #expect(recorder.payload.withLock { $0.count } == 64 * piece.count)
            #expect(recorder.log.last == "completed -")
            #expect(budget.peak <= 64 * 1024 + 128 * 1024, "peak \(budget.peak)")
        }
    }
}

import LambdaInvoke
import LambdaPayload
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import GatewayCore

/// A streamed answer's head and pieces from the Invoke stream's events, with the budget's bytes
/// followed exactly: what a piece takes it holds until the writer gives it back, and nothing is
/// given back twice, whatever the stream does.
@Suite("streamed answer (ResponseStream)")
struct ResponseStreamTests {
    static let integration = "application/vnd.awslambda.http-integration-response"

    struct Outcome: Sendable {
        var beginning: String
        var parts: [String]
        var heldAtEnd: Int
        var cancelled: Bool
    }

    /// Feeds `pieces` as `InvokeStream` hands them on (each taking its bytes), then InvokeComplete;
    /// the consumer writes at once (gives each part's bytes back).
    static func run(contentType: String?, pieces: [String], errorCode: String? = nil) async throws -> Outcome {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let budget = ResponseBudget(limit: 1 << 20)
        return try await loop.submit {
            let stream = ResponseStream(eventLoop: loop, budget: budget)
            var beginning = "none"
            var parts: [String] = []
            let cancelled = Atomic(false)
            stream.began = { began in
                switch began {
                case .head(let head): beginning = "head \(head.status) \(head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ","))"
                case .answer(let answer): beginning = "answer \(answer.response.status) \(answer.details)"
                }
            }
            stream.receive(.started(InvokeStreamStart(contentType: contentType, requestID: "r-1", upstreamLocalAddress: nil, attempts: 1, cancel: { cancelled.store(true, ordering: .relaxed) })))
            stream.attach { part in
                switch part {
                case .body(let bytes, let held):
                    parts.append(String(buffer: bytes))
                    budget.release(held)
                case .end(let failure):
                    parts.append(failure == nil ? "end" : "broken")
                }
            }
            for piece in pieces {
                budget.take(piece.utf8.count)
                stream.receive(.payload(ByteBuffer(string: piece), heldBytes: piece.utf8.count))
            }
            stream.receive(.completed(InvokeStreamCompletion(errorCode: errorCode)))
            return Outcome(beginning: beginning, parts: parts, heldAtEnd: budget.held, cancelled: cancelled.load(ordering: .relaxed))
        }.get()
    }

    @Test func aPreludeInPiecesMakesTheHeadAndTheRestIsTheBody() async throws {
        let outcome = try await Self.run(contentType: Self.integration, pieces: [#"{"statusCode":201,"head"#, #"ers":{"x-a":"b"}}"# + "\0\0\0", "\0\0\0\0\0one", "two"])
        #expect(outcome.beginning == "head 201 content-type=application/octet-stream,x-a=b")
        #expect(outcome.parts == ["one", "two", "end"])
        #expect(outcome.heldAtEnd == 0)
    }

    /// An invalid prelude (a status that is not a number) read over several pieces: a 502 in place
    /// of the head, the call cancelled, and the budget back at zero, not below.
    @Test func anInvalidPreludeIsA502AndItsBytesAreGivenBackOnce() async throws {
        let outcome = try await Self.run(contentType: Self.integration, pieces: [#"{"statusCode":"#, #""abc"}"#, "\0\0\0\0\0\0\0\0body"])
        #expect(outcome.beginning == "answer 502 \(ResponseCodeDetails.invalidFunctionResponse)")
        #expect(outcome.cancelled)
        #expect(outcome.heldAtEnd == 0)
        let cut = try await Self.run(contentType: Self.integration, pieces: [#"{"statusCode":200"#])
        #expect(cut.beginning.hasPrefix("answer 502"), "a stream that ends inside its prelude")
        #expect(cut.heldAtEnd == 0)
    }

    @Test func aFunctionErrorAfterTheHeadBreaksTheResponseAndBeforeItIsA502() async throws {
        let after = try await Self.run(contentType: "text/plain", pieces: ["partial"], errorCode: "Unhandled")
        #expect(after.beginning == "head 200 content-type=text/plain")
        #expect(after.parts == ["partial", "broken"])
        #expect(after.heldAtEnd == 0)
        let before = try await Self.run(contentType: nil, pieces: [], errorCode: "Unhandled")
        #expect(before.beginning == "answer 502 \(ResponseCodeDetails.functionError)")
    }
}

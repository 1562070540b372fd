import Foundation
import LambdaPayload
import NIOCore
import NIOHTTP1

/// What a streamed call (`LambdaInvokeClient.invokeStreaming`) reports, in this order: either
/// `failed` alone (no stream: the call failed as a buffered one fails, nothing was received), or
/// `started`, then any number of `payload`, then exactly one of `completed` and `failed`.
public enum InvokeStreamEvent: Sendable {
    /// Lambda accepted the call and its answer began (a 200).
    case started(InvokeStreamStart)
    /// Bytes the function wrote (a `PayloadChunk`). `heldBytes`: bytes of the call's
    /// `ResponseBudget` they hold, which the receiver gives back once they are written or dropped.
    case payload(ByteBuffer, heldBytes: Int)
    /// The stream ended with its `InvokeComplete`; the function may still have failed
    /// (`errorCode`), after some of its bytes went out.
    case completed(InvokeStreamCompletion)
    /// The call failed before a stream, or the stream broke: a bad frame, the connection lost,
    /// the deadline, or an end without `InvokeComplete`.
    case failed(LambdaInvokeError)
}

/// The head of a streamed answer.
public struct InvokeStreamStart: Sendable {
    /// The function's content type, when Lambda named one (`ResponseStreamContentType`); nil when
    /// it gave only the event-stream envelope's type.
    public var contentType: String?
    /// `x-amzn-RequestId`.
    public var requestID: String?
    /// The connection's own address, `ip:port` (`%UPSTREAM_LOCAL_ADDRESS%`).
    public var upstreamLocalAddress: String?
    /// Requests sent to Lambda for the call, retries before the stream included.
    public var attempts: Int
    let cancelCall: @Sendable () -> Void

    /// `cancel`: what `cancel()` does (the client closes its connection to Lambda).
    public init(contentType: String?, requestID: String?, upstreamLocalAddress: String?, attempts: Int, cancel: @escaping @Sendable () -> Void) {
        self.contentType = contentType
        self.requestID = requestID
        self.upstreamLocalAddress = upstreamLocalAddress
        self.attempts = attempts
        self.cancelCall = cancel
    }

    /// Abandons the stream (its caller went away): the connection to Lambda closes, and the call
    /// ends with `failed`.
    public func cancel() { cancelCall() }
}

/// How a stream ended: `InvokeComplete`'s fields.
public struct InvokeStreamCompletion: Sendable, Equatable {
    /// The function failed mid-stream (`Unhandled`, or the error's type).
    public var errorCode: String?
    public var errorDetails: String?
    /// The base64 tail of the function's log, when it was asked for.
    public var logResult: String?

    public init(errorCode: String? = nil, errorDetails: String? = nil, logResult: String? = nil) {
        self.errorCode = errorCode
        self.errorDetails = errorDetails
        self.logResult = logResult
    }
}

extension LambdaInvokeClient {
    /// `InvokeWithResponseStream`: signs and sends the call as `invoke(_:on:completion:)` does
    /// (credentials, pooled connections, the one throttling retry, all before the stream starts)
    /// and reports the answer as it arrives, on `eventLoop`. The answer is never held whole: each
    /// piece Lambda sends is decoded and handed on, and reading from Lambda pauses while the
    /// request's `ResponseBudget` is spent. The request's timeout covers the whole stream.
    /// The returned handle cancels the call at any time, before its answer began too (its caller
    /// went away while the function had not written yet); call it on `eventLoop`.
    @discardableResult
    public func invokeStreaming(_ request: InvokeRequest, on eventLoop: any EventLoop, events: @escaping @Sendable (InvokeStreamEvent) -> Void) -> InvokeStreamHandle {
        let limit = configuration.maximumConcurrentStreams
        let perConnection = configuration.maximumStreamsPerConnection
        if let budget = request.budget, budget.streams.wrappingAdd(1, ordering: .relaxed).newValue > perConnection {
            budget.streams.wrappingSubtract(1, ordering: .relaxed)
            events(.failed(LambdaInvokeError(.tooManyStreams(limit: perConnection), "\(perConnection) streamed answers are in progress on this connection, as many as one connection may have")))
            return InvokeStreamHandle(stream: nil)
        }
        guard activeStreams.wrappingAdd(1, ordering: .relaxed).newValue <= limit else {
            activeStreams.wrappingSubtract(1, ordering: .relaxed)
            request.budget?.streams.wrappingSubtract(1, ordering: .relaxed)
            events(.failed(LambdaInvokeError(.tooManyStreams(limit: limit), "\(limit) streamed answers are in progress, as many as the gateway allows at once")))
            return InvokeStreamHandle(stream: nil)
        }
        let stream = InvokeStream(eventLoop: eventLoop, budget: request.budget, events: events)
        let connection = request.budget
        var request = request
        request.invocationType = .requestResponse
        request.stream = stream.sink
        invoke(request, on: eventLoop) { outcome in
            // The call is over (its connection went back to the pool or was closed): only now is the
            // slot free, even when InvokeComplete ended the stream earlier.
            self.activeStreams.wrappingSubtract(1, ordering: .relaxed)
            connection?.streams.wrappingSubtract(1, ordering: .relaxed)
            stream.finish(outcome)
        }
        return InvokeStreamHandle(stream: stream)
    }

    /// Streamed calls in progress now (`maximumConcurrentStreams` bounds them).
    public var streamsInProgress: Int { activeStreams.load(ordering: .relaxed) }
}

/// Cancels a streamed call (`invokeStreaming`), whether its answer began or not.
public struct InvokeStreamHandle: Sendable {
    let stream: InvokeStream?

    /// Closes the call's connection to Lambda if it still carries the call; the call ends with
    /// `failed` (unless it ended already). On the call's event loop.
    public func cancel() {
        stream?.cancel()
    }
}

/// One streamed call's answer, decoded on the caller's event loop: the upstream connection's
/// callbacks hop there in order, and so does the call's outcome, which comes after its last piece.
///
/// Budget: the upstream handler takes each piece's bytes as it reads them (so reading pauses while
/// the client's budget is spent); here every payload handed on takes its own bytes, and the piece's
/// are given back. What the decoder holds of a message not yet complete is not counted: at most one
/// message (`maximumMessageBytes`), and counting it could stall a stream whose message is larger
/// than the room left, with nothing else to free it.
final class InvokeStream: @unchecked Sendable {
    // @unchecked: everything is touched on `eventLoop` only.
    private enum State {
        /// No answer yet.
        case awaitingHead
        /// The stream is under way.
        case streaming(EventStreamDecoder, attempts: Int, cancel: @Sendable () -> Void)
        /// `completed` or `failed` was reported.
        case done
    }

    /// The most one event-stream message may take: a `PayloadChunk` is far smaller in practice.
    static let maximumMessageBytes = 1 << 20
    static let eventStreamContentType = "application/vnd.amazon.eventstream"

    private let eventLoop: any EventLoop
    private let budget: ResponseBudget?
    private let events: @Sendable (InvokeStreamEvent) -> Void
    private var state = State.awaitingHead
    /// `received` is reporting: an outcome that arrives meanwhile (the receiver cancelled the call
    /// from within an event) waits for it to finish.
    private var receiving = false
    private var deferredOutcome: LambdaInvokeClient.Outcome?
    /// How to abandon the exchange the call is on now (set when a connection takes it), and whether
    /// the call was cancelled before any did.
    private var cancelExchange: (@Sendable () -> Void)?
    private var cancelled = false

    init(eventLoop: any EventLoop, budget: ResponseBudget?, events: @escaping @Sendable (InvokeStreamEvent) -> Void) {
        self.eventLoop = eventLoop
        self.budget = budget
        self.events = events
    }

    /// The upstream connection's side; each callback hops to `eventLoop` as the call's outcome does
    /// (`UpstreamPool.execute`), so they arrive in order.
    var sink: UpstreamStreamSink {
        UpstreamStreamSink(
            head: { headers, localAddress, attempts, cancel in
                self.onLoop { self.started(headers: headers, localAddress: localAddress, attempts: attempts, cancel: cancel) }
            },
            body: { chunk in self.onLoop { self.received(chunk) } },
            attached: { cancel in self.onLoop { self.attached(cancel) } }
        )
    }

    private func attached(_ cancel: @escaping @Sendable () -> Void) {
        cancelExchange = cancel
        if cancelled { cancel() }
    }

    /// Abandons the call: its exchange now, or the first one a connection takes.
    func cancel() {
        eventLoop.preconditionInEventLoop()
        cancelled = true
        if case .done = state { return }
        cancelExchange?()
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop {
            body()
        } else {
            eventLoop.execute(body)
        }
    }

    private func started(headers: HTTPHeaders, localAddress: String?, attempts: Int, cancel: @escaping @Sendable () -> Void) {
        guard case .awaitingHead = state else { return }
        state = .streaming(EventStreamDecoder(maximumMessageBytes: Self.maximumMessageBytes), attempts: attempts, cancel: cancel)
        let type = headers.first(name: "content-type")
        let functionType = type.flatMap { $0.lowercased().hasPrefix(Self.eventStreamContentType) ? nil : $0 }
        events(.started(InvokeStreamStart(contentType: functionType, requestID: headers.first(name: "x-amzn-RequestId"), upstreamLocalAddress: localAddress, attempts: attempts, cancel: cancel)))
    }

    private func received(_ chunk: ByteBuffer) {
        // The piece's bytes, taken by the upstream handler, go back once its payloads took theirs,
        // and before the stream's last event: whoever sees it sees the budget settled.
        var pieceHeld = budget == nil ? 0 : chunk.readableBytes
        func giveBackPiece() {
            if pieceHeld > 0 { budget?.release(pieceHeld) }
            pieceHeld = 0
        }
        defer { giveBackPiece() }
        guard case .streaming(var decoder, let attempts, let cancel) = state else { return }
        state = .done
        receiving = true
        defer {
            receiving = false
            if let outcome = deferredOutcome {
                deferredOutcome = nil
                finish(outcome)
            }
        }
        decoder.append(chunk)
        var completion: InvokeStreamCompletion?
        do {
            while let message = try decoder.next() {
                switch try Self.classify(message) {
                case .payload(let bytes):
                    guard completion == nil else { throw StreamProblem("a PayloadChunk after InvokeComplete") }
                    if let budget { budget.take(bytes.readableBytes) }
                    events(.payload(bytes, heldBytes: budget == nil ? 0 : bytes.readableBytes))
                case .complete(let fields):
                    guard completion == nil else { throw StreamProblem("a second InvokeComplete") }
                    completion = fields
                case .ignored:
                    break
                }
            }
            if completion != nil && decoder.pendingBytes > 0 { throw StreamProblem("bytes after InvokeComplete") }
        } catch {
            cancel()
            giveBackPiece()
            events(.failed(Self.broken(LambdaInvokeError(.connectionLost, "Lambda's stream broke: \(error)"), attempts: attempts)))
            return
        }
        if let completion {
            // The stream is complete now, whatever the connection does next (the end of its HTTP
            // answer normally comes with it; a connection that stays open is the pool's concern).
            giveBackPiece()
            events(.completed(completion))
            return
        }
        state = .streaming(decoder, attempts: attempts, cancel: cancel)
    }

    /// The call's outcome, after the last piece of its answer.
    func finish(_ outcome: LambdaInvokeClient.Outcome) {
        if receiving {
            deferredOutcome = outcome
            return
        }
        let previous = state
        state = .done
        switch previous {
        case .done:
            return
        case .awaitingHead:
            switch outcome {
            case .failure(let error):
                events(.failed(error))
            case .success(let result):
                // A 2xx other than 200 has no stream (Lambda answers a RequestResponse stream 200).
                var error = LambdaInvokeError(.connectionLost, "Lambda answered \(result.statusCode) without a stream")
                error.attempts = result.attempts
                error.upstreamLocalAddress = result.upstreamLocalAddress
                if result.heldBytes > 0 { budget?.release(result.heldBytes) }
                events(.failed(error))
            }
        case .streaming(let decoder, let attempts, _):
            switch outcome {
            case .failure(var error):
                error.message = "the stream broke: " + error.message
                events(.failed(Self.broken(error, attempts: attempts)))
            case .success:
                let problem = decoder.pendingBytes > 0 ? "Lambda's stream ended inside a message" : "Lambda's stream ended without InvokeComplete"
                events(.failed(Self.broken(LambdaInvokeError(.connectionLost, problem), attempts: attempts)))
            }
        }
    }

    private static func broken(_ error: LambdaInvokeError, attempts: Int) -> LambdaInvokeError {
        var error = error
        error.attempts = attempts
        return error
    }

    private enum Message {
        case payload(ByteBuffer)
        case complete(InvokeStreamCompletion)
        case ignored
    }

    private struct StreamProblem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// A message of the stream: AWS's event-stream message types (`event`, `exception`, `error`).
    private static func classify(_ message: EventStreamMessage) throws(StreamProblem) -> Message {
        func string(_ name: String) -> String? {
            if case .string(let value)? = message.header(name) { return value }
            return nil
        }
        switch string(":message-type") ?? "event" {
        case "event":
            switch string(":event-type") {
            case "PayloadChunk"?:
                return .payload(message.payload)
            case "InvokeComplete"?:
                return .complete(try completion(from: message.payload))
            default:
                // An event type newer than this gateway: skipped, as the AWS SDKs skip unknown events.
                return .ignored
            }
        case "exception":
            throw StreamProblem("\(string(":exception-type") ?? "exception"): \(LogText.clip(String(buffer: message.payload)))")
        case "error":
            throw StreamProblem("\(string(":error-code") ?? "error"): \(LogText.clip(string(":error-message") ?? ""))")
        case let other:
            throw StreamProblem("unknown message type \(LogText.clip(other))")
        }
    }

    /// `InvokeComplete`'s JSON: `ErrorCode`, `ErrorDetails`, `LogResult`, each optional.
    private static func completion(from payload: ByteBuffer) throws(StreamProblem) -> InvokeStreamCompletion {
        guard payload.readableBytes > 0 else { return InvokeStreamCompletion() }
        guard let parsed = try? JSONParser.parse(payload.readableBytesView), case .object = parsed else {
            throw StreamProblem("InvokeComplete is not a JSON object")
        }
        // An empty string is an absent field: a stream that completed has `"ErrorCode": ""`.
        func field(_ name: String) -> String? {
            if case .string(let value)? = parsed[name], !value.isEmpty { return value }
            return nil
        }
        return InvokeStreamCompletion(errorCode: field("ErrorCode"), errorDetails: field("ErrorDetails"), logResult: field("LogResult"))
    }
}

/// Text from Lambda's stream, cut short for an error message.
enum LogText {
    static func clip(_ text: String, limit: Int = 256) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }
}

/// How a service's function answers (the names AWS uses for function URLs): `BUFFERED` by `Invoke`,
/// the whole answer at once, or `RESPONSE_STREAM` by `InvokeWithResponseStream`, piece by piece.
public enum InvokeMode: String, Sendable, Hashable, CaseIterable {
    case buffered = "BUFFERED"
    case responseStream = "RESPONSE_STREAM"

    /// `BUFFERED` or `RESPONSE_STREAM`, in any case.
    public init?(configValue: String) {
        guard let mode = Self(rawValue: configValue.uppercased()) else { return nil }
        self = mode
    }
}

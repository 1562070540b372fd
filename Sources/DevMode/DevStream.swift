import LambdaPayload
import NIOCore

/// What dev mode's Lambda endpoint sends for `InvokeWithResponseStream`: a script of event-stream
/// messages, each after a pause, that ends with `InvokeComplete` (or, to show what the gateway
/// does with a broken stream, with the connection closed or a corrupt frame).
public struct DevStream: Sendable {
    public enum Step: Sendable {
        /// A `PayloadChunk` with bytes the function wrote.
        case payload(ByteBuffer)
        /// A `PayloadChunk` of `count` times `byte`, made when it is sent (a long stream is not
        /// held in memory).
        case filler(count: Int, byte: UInt8)
        /// The server-sent event `data: tick <index> of <count>`, made when it is sent.
        case tick(Int, of: Int)
        /// `InvokeComplete`; `errorCode` when the function failed.
        case complete(errorCode: String?)
        /// The connection closes, as if Lambda went away.
        case abort
        /// A frame whose checksum is wrong.
        case corrupt
    }

    public var steps: [Step]
    /// Between pieces.
    public var pause: TimeAmount
    /// Before the first piece: a function slow to its first byte (`wait_ms`).
    public var firstPause: TimeAmount = .zero
    /// The HTTP `Content-Type` of the answer: the event-stream envelope's, or a function's own.
    public var contentType: String

    /// The frames of one step (nil: close the connection).
    static func frames(of step: Step) -> ByteBuffer? {
        switch step {
        case .payload(let bytes): EventStreamEncoder.payloadChunk(bytes)
        case .filler(let count, let byte): EventStreamEncoder.payloadChunk(ByteBuffer(repeating: byte, count: count))
        case .tick(let index, let count): EventStreamEncoder.payloadChunk(ByteBuffer(string: "data: tick \(index) of \(count)\n\n"))
        case .complete(let code): EventStreamEncoder.invokeComplete(errorCode: code, errorDetails: code.map { "the function failed: \($0)" })
        case .abort: nil
        case .corrupt:
            {
                var frame = EventStreamEncoder.payloadChunk(ByteBuffer(string: "corrupt"))
                let last = frame.writerIndex - 1
                frame.setInteger(frame.getInteger(at: last, as: UInt8.self)! ^ 0xFF, at: last)
                return frame
            }()
        }
    }
}

extension DevFunction {
    /// The function's answer as a stream. `countdown` writes, in the shape of a Lambda function
    /// URL's streamed answer, a prelude (`text/event-stream`) and then one server-sent event per
    /// pause; its query parameters shape it for demos and tests:
    /// `n` (events, default 5), `delay_ms` (default 300), `wait_ms` (before the first byte),
    /// `size` (bytes per piece instead of events,
    /// no prelude), `prelude=0`, `fail_after`, `abort_after`, `corrupt_after` (break the stream
    /// after that many pieces), `type` (the answer's own content type, no prelude). The others
    /// stream their buffered answer: its head as a prelude, then its body.
    public func stream(event: ByteBuffer) -> DevStream {
        let parsed = try? JSONParser.parse(event.readableBytesView)
        func number(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) -> Int {
            Self.queryValue(name, in: parsed).flatMap(Int.init).map { min(max($0, range.lowerBound), range.upperBound) } ?? fallback
        }
        let envelope = "application/vnd.amazon.eventstream"
        guard self == .countdown else {
            let result = (try? JSONParser.parse(invoke(event: event).readableBytesView)) ?? .object([])
            var headers: [JSONMember] = []
            if case .object(let members)? = result["headers"] { headers = members }
            let prelude = JSONValue.object([JSONMember("statusCode", result["statusCode"] ?? .number("200")), JSONMember("headers", .object(headers))])
            var bytes = ByteBuffer(string: prelude.jsonText)
            bytes.writeRepeatingByte(0, count: 8)
            var body = ByteBuffer()
            if case .string(let text)? = result["body"] { body = ByteBuffer(string: text) }
            return DevStream(steps: [.payload(bytes), .payload(body), .complete(errorCode: nil)], pause: .zero, contentType: envelope)
        }
        let count = number("n", 5, 0...1_000_000)
        let pause = TimeAmount.milliseconds(Int64(number("delay_ms", 300, 0...10_000)))
        let firstPause = TimeAmount.milliseconds(Int64(number("wait_ms", 0, 0...60_000)))
        let size = Self.queryValue("size", in: parsed).flatMap(Int.init).map { min(max($0, 1), 1 << 20) }
        let ownType = Self.queryValue("type", in: parsed)
        let withPrelude = size == nil && ownType == nil && Self.queryValue("prelude", in: parsed) != "0"
        let breakAt: (step: Int, as: DevStream.Step)? =
            Self.queryValue("fail_after", in: parsed).flatMap(Int.init).map { ($0, .complete(errorCode: "Unhandled")) }
            ?? Self.queryValue("abort_after", in: parsed).flatMap(Int.init).map { ($0, .abort) }
            ?? Self.queryValue("corrupt_after", in: parsed).flatMap(Int.init).map { ($0, .corrupt) }

        var steps: [DevStream.Step] = []
        if withPrelude {
            let prelude = JSONValue.object([
                JSONMember("statusCode", .number("200")),
                JSONMember(
                    "headers",
                    .object([
                        JSONMember("content-type", .string("text/event-stream")), JSONMember("cache-control", .string("no-cache")),
                        JSONMember("x-dev-function", .string("countdown")),
                    ])),
            ])
            // The prelude and its 8 NULs in two pieces, cut inside the NULs, as a function's two
            // writes may arrive.
            var first = ByteBuffer(string: prelude.jsonText)
            first.writeRepeatingByte(0, count: 3)
            var second = ByteBuffer()
            second.writeRepeatingByte(0, count: 5)
            steps += [.payload(first), .payload(second)]
        }
        for index in 0..<count {
            if let breakAt, breakAt.step == index {
                steps.append(breakAt.as)
                return DevStream(steps: steps, pause: pause, firstPause: firstPause, contentType: ownType ?? envelope)
            }
            if let size {
                steps.append(.filler(count: size, byte: UInt8(ascii: "a") + UInt8(index % 26)))
            } else {
                steps.append(.tick(index + 1, of: count))
            }
        }
        steps.append(breakAt.map { $0.step >= count ? $0.as : .complete(errorCode: nil) } ?? .complete(errorCode: nil))
        return DevStream(steps: steps, pause: pause, firstPause: firstPause, contentType: ownType ?? envelope)
    }
}

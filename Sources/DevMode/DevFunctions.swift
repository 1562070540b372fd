import LambdaPayload
import NIOCore

/// The built-in functions of dev mode's Lambda endpoint. Each returns an Envoy / API Gateway
/// shaped result (`statusCode`, `headers`, `body`), which both payload formats decode.
public enum DevFunction: String, CaseIterable, Sendable {
    /// Answers with the exact event the gateway sent: shows the payload format at work.
    case echo
    /// A JSON greeting; `?name=` picks who is greeted.
    case greeting
    /// Server-sent events, one every 300 ms, for a service in `RESPONSE_STREAM` mode (`DevStream`);
    /// buffered, the same events in one answer.
    case countdown

    public func invoke(event: ByteBuffer) -> ByteBuffer {
        let parsed = try? JSONParser.parse(event.readableBytesView)
        let result: JSONValue
        switch self {
        case .echo:
            result = .object([
                JSONMember("statusCode", .number("200")),
                JSONMember("headers", .object([JSONMember("content-type", .string("application/json")), JSONMember("x-dev-function", .string("echo"))])),
                JSONMember("body", .string(String(buffer: event))),
            ])
        case .greeting:
            let name = Self.queryValue("name", in: parsed) ?? "mesh"
            let body = JSONValue.object([JSONMember("greeting", .string("Hello, \(name)!")), JSONMember("function", .string("greeting"))])
            result = .object([
                JSONMember("statusCode", .number("200")),
                JSONMember("headers", .object([JSONMember("content-type", .string("application/json")), JSONMember("x-dev-function", .string("greeting"))])),
                JSONMember("body", .string(body.jsonText)),
            ])
        case .countdown:
            let count = Self.queryValue("n", in: parsed).flatMap(Int.init).map { min(max($0, 0), 1000) } ?? 5
            let body = (0..<count).map { "data: tick \($0 + 1) of \(count)\n\n" }.joined()
            result = .object([
                JSONMember("statusCode", .number("200")),
                JSONMember("headers", .object([JSONMember("content-type", .string("text/event-stream")), JSONMember("x-dev-function", .string("countdown"))])),
                JSONMember("body", .string(body)),
            ])
        }
        return ByteBuffer(string: result.jsonText)
    }

    /// A query parameter from either payload format: API Gateway v2 `queryStringParameters`, or
    /// Envoy's `query_string_parameters`.
    static func queryValue(_ name: String, in event: JSONValue?) -> String? {
        for key in ["queryStringParameters", "query_string_parameters"] {
            if case .string(let value)? = event?[key]?[name] { return value }
        }
        return nil
    }
}

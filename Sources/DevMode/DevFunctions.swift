import LambdaPayload
import NIOCore

/// The built-in functions of dev mode's Lambda endpoint. Each returns an Envoy / API Gateway
/// shaped result (`statusCode`, `headers`, `body`), which both payload formats decode.
public enum DevFunction: String, CaseIterable, Sendable {
    /// Answers with the exact event the gateway sent: shows the payload format at work.
    case echo
    /// A JSON greeting; `?name=` picks who is greeted.
    case greeting

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

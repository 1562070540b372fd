import LambdaPayload
import NIOCore
import NIOHTTP1

/// The code and message of an AWS error answer (AWS Lambda Invoke API reference, Errors), from whichever place holds them:
/// the `X-Amzn-ErrorType` header, a JSON body (`__type`, `code`, `Type`/`message`), or an XML body
/// (`<Code>`, `<Message>`) as the common AWS layer sometimes sends. Shared by every AWS client of
/// the project: REST-JSON (Lambda) and JSON 1.1 (SSM) services answer errors the same ways.
public struct AWSErrorBody: Sendable, Hashable {
    public var code: String
    public var message: String

    /// `service` names the service in the message made up when the answer carries none.
    public static func parse(status: Int, headers: HTTPHeaders, body: ByteBuffer, service: String = "Lambda") -> AWSErrorBody {
        var code = headers.first(name: "X-Amzn-ErrorType").map { String($0.split(separator: ":", maxSplits: 1).first ?? "") }
        var message: String?
        if let json = try? body.withUnsafeReadableBytes({ bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }) {
            if code == nil || code!.isEmpty {
                for key in ["__type", "code", "Code"] {
                    if case .string(let text)? = json[key] {
                        // `__type` may be `namespace#Code`.
                        code = String(text.split(separator: "#").last ?? "")
                        break
                    }
                }
            }
            for key in ["message", "Message", "errorMessage"] {
                if case .string(let text)? = json[key] {
                    message = text
                    break
                }
            }
        } else {
            let text = String(buffer: body)
            if code == nil || code!.isEmpty { code = element("Code", in: text) }
            message = element("Message", in: text)
        }
        let fallbackCode = status >= 500 ? "ServiceException" : "HTTP\(status)"
        return AWSErrorBody(
            code: (code?.isEmpty ?? true) ? fallbackCode : code!,
            message: message ?? "\(service) answered \(status)"
        )
    }

    static func element(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) else {
            return nil
        }
        return String(xml[open.upperBound..<close.lowerBound])
    }
}

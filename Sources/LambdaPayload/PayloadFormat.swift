/// How an HTTP request becomes an Invoke payload and a result becomes a response (docs/COMPATIBILITY.md, Payload formats).
public enum PayloadFormat: String, Sendable, Hashable, CaseIterable {
    /// Envoy's aws_lambda JSON (snake_case keys); the default.
    case envoy
    /// API Gateway HTTP API payload 2.0, as Lambda function URLs use.
    case apiGatewayV2 = "apigateway-v2"

    /// Parses a configured value case-insensitively (`envoy`, `APIGateway-V2`).
    public init?(configValue: String) {
        guard let format = Self.allCases.first(where: { $0.rawValue.asciiCaseInsensitiveEquals(configValue) }) else {
            return nil
        }
        self = format
    }
}

/// What the codecs need to know about the service beyond the request itself.
public struct PayloadContext: Sendable, Hashable {
    /// The Consul service name (API Gateway v2 `requestContext.apiId`).
    public var serviceName: String
    /// The function's AWS account id (API Gateway v2 `requestContext.accountId`).
    public var accountID: String

    public init(serviceName: String, accountID: String) {
        self.serviceName = serviceName
        self.accountID = accountID
    }
}

/// Errors of the payload codecs. Each maps to one client response (docs/COMPATIBILITY.md, Errors the gateway gives itself).
public struct PayloadError: Error, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// A passthrough body that is not JSON (client 400).
        case invalidRequestContent = "InvalidRequestContent"
        /// A function result that cannot be turned into a response (client 502).
        case invalidFunctionResponse = "InvalidFunctionResponse"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

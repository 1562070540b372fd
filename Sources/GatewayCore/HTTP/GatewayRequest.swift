import LambdaPayload
import NIOCore

/// One complete client request, as any HTTP version delivers it.
public struct GatewayRequest: Sendable {
    public var method: String
    /// The request target as received (origin-form or absolute-form).
    public var target: String
    public var headers: [HTTPField]
    public var body: ByteBuffer
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0`.
    public var protocolName: String

    public init(method: String, target: String, headers: [HTTPField], body: ByteBuffer, protocolName: String) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.protocolName = protocolName
    }
}

import AWSSigV4
import LambdaPayload
import MeshIdentity

/// What an accepted connection is, before its first request: the service it is for and who calls.
public struct ClientConnection: Sendable {
    /// How the caller reached the gateway.
    public enum Caller: Sendable {
        /// Authenticated mesh mTLS: the SPIFFE identity of the client certificate, and this
        /// connection's `x-forwarded-client-cert` element (docs/COMPATIBILITY.md, SNIs and certificates), escaped for JSON
        /// once for all its requests.
        case mesh(SPIFFEID, forwardedClientCert: PreEscapedString)
        /// A plaintext direct-invocation listener (`--upstream`): no mTLS, so no intentions.
        case direct
    }

    /// The service the connection was opened for (from SNI, or the direct listener's service), by
    /// its key in the snapshot (`ServedService.key`: the name in the default partition and namespace).
    public var serviceName: String
    public var caller: Caller
    /// `h2`, `http/1.1`, or nil when the client offered no ALPN (always nil on plaintext).
    public var negotiatedProtocol: String?
    /// The peer's address, for the API Gateway v2 `sourceIp`.
    public var peerIP: String
    /// What the access log writes of the connection (addresses, SNI, the caller's certificate).
    public var accessLog: AccessLogConnection
    /// A mesh connection's payloads open with its `x-forwarded-client-cert` element
    /// (`RequestEncoder.lead`): the hash of those bytes, made once for all its signatures.
    public var payloadPrefix: SHA256Prefix?
    /// The service's `/metrics` series, found once when the connection is set up for HTTP
    /// (`RequestProcessor.configureHTTP`), so that no request looks them up by name.
    var metrics: ServiceMetrics?

    public init(serviceName: String, caller: Caller, negotiatedProtocol: String?, peerIP: String, accessLog: AccessLogConnection = AccessLogConnection()) {
        self.serviceName = serviceName
        self.caller = caller
        self.negotiatedProtocol = negotiatedProtocol
        self.peerIP = peerIP
        self.accessLog = accessLog
        if case .mesh(_, let element) = caller {
            self.payloadPrefix = SHA256Prefix(RequestEncoder.lead(name: ForwardedClientCert.fieldName, value: element))
        }
    }
}

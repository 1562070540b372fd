/// Why an Invoke call did not produce a result. `code` decides the client's status (docs/DECISIONS.md D11).
public struct LambdaInvokeError: Error, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// Lambda answered an error: its status and AWS error code (e.g. 404 `ResourceNotFoundException`).
        case aws(status: Int, errorCode: String)
        /// The payload is over the Lambda limit; nothing was sent.
        case payloadTooLarge(limit: Int)
        /// No usable credentials; nothing was sent (never unsigned).
        case noCredentials
        /// DNS, connect or TLS failure: the request never reached Lambda.
        case endpointUnreachable
        /// The connection failed after the request was written (it may have run).
        case connectionLost
        /// The per-call deadline passed.
        case timeout
        /// Lambda's answer exceeded the response limit.
        case responseTooLarge(limit: Int)
        /// The function cannot be addressed (ARN or endpoint configuration).
        case invalidTarget
        /// As many streamed answers as the client allows are in progress; nothing was sent.
        case tooManyStreams(limit: Int)
    }

    public var code: Code
    public var message: String
    /// `Retry-After` seconds of a 429, when Lambda sent one.
    public var retryAfter: Int?
    /// Requests sent to Lambda before this failure, retries included (0: none was).
    public var attempts = 0
    /// The local address of the connection Lambda's error answer came on, `ip:port`, when it
    /// answered (`%UPSTREAM_LOCAL_ADDRESS%`; like `attempts`, left out of equality).
    public var upstreamLocalAddress: String?
    /// Lambda throttled the call, the client retried it once, and this is how the retry failed
    /// (Envoy's `URX`: retries exhausted). A retry on a stale pooled connection does not count.
    public var failedAfterThrottlingRetry = false

    public init(_ code: Code, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// The AWS error code, or the gateway's own name for local errors (docs/COMPATIBILITY.md, Errors the gateway gives itself).
    public var errorName: String {
        switch code {
        case .aws(_, let errorCode): errorCode
        case .payloadTooLarge: "RequestTooLarge"
        case .noCredentials: "NoCredentials"
        case .endpointUnreachable: "LambdaEndpointUnreachable"
        case .connectionLost: "UpstreamConnectionError"
        case .timeout: "UpstreamTimeout"
        case .responseTooLarge: "InvalidFunctionResponse"
        case .invalidTarget: "InvalidFunctionTarget"
        case .tooManyStreams: "TooManyStreams"
        }
    }

    /// The status the gateway answers the client with.
    public var clientStatus: Int {
        switch code {
        case .aws(429, _): 429
        case .aws(413, _): 413
        case .aws: 502
        case .payloadTooLarge: 413
        case .noCredentials, .endpointUnreachable, .tooManyStreams: 503
        case .connectionLost, .responseTooLarge, .invalidTarget: 502
        case .timeout: 504
        }
    }

    /// An authentication failure of the common AWS layer: the credentials should be refreshed.
    public var isAuthenticationFailure: Bool {
        guard case .aws(403, let errorCode) = code else { return false }
        return Self.authenticationErrorCodes.contains(errorCode)
    }

    /// Lambda answered 429 `TooManyRequestsException`.
    public var isThrottling: Bool {
        if case .aws(429, _) = code { return true }
        return false
    }

    /// The common AWS layer's codes for credentials AWS refused (also answered by JSON 1.1 services,
    /// with status 400).
    public static let authenticationErrorCodes: Set<String> = [
        "InvalidSignatureException", "SignatureDoesNotMatch", "UnrecognizedClientException", "InvalidClientTokenId",
        "ExpiredTokenException", "AccessDeniedException", "ExpiredToken", "IncompleteSignature",
    ]

    public var description: String { "\(errorName): \(message)" }

    /// Equal when code, message and `Retry-After` are: how many attempts led to it does not matter.
    public static func == (lhs: LambdaInvokeError, rhs: LambdaInvokeError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.retryAfter == rhs.retryAfter
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
        hasher.combine(retryAfter)
    }
}

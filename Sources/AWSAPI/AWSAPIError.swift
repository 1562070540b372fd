import LambdaInvoke

/// Why an AWS control-plane call failed. Messages name the operation and the endpoint or setting.
public struct AWSAPIError: Error, Hashable, CustomStringConvertible {
    public enum Code: Hashable, Sendable {
        /// AWS answered an error: its status and error code (e.g. 404 `ResourceNotFoundException`,
        /// 400 `ParameterNotFound`, 429 `TooManyRequestsException`, 403 `AccessDeniedException`).
        case aws(status: Int, code: String)
        /// Connect, TLS, a lost connection or the call's deadline.
        case transport
        /// No usable credentials; nothing was sent (never unsigned).
        case noCredentials
        /// A 2xx answer that is not what the operation returns.
        case malformedResponse
        /// Refused before sending: a value too large for its tier, a bad endpoint URL, an empty name.
        case invalidRequest
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The AWS error code, when AWS answered one.
    public var awsErrorCode: String? {
        if case .aws(_, let code) = code { return code }
        return nil
    }

    /// The function, alias or parameter does not exist.
    public var isNotFound: Bool {
        awsErrorCode == "ResourceNotFoundException" || awsErrorCode == "ParameterNotFound"
    }

    /// AWS refused the request's rate (retried with backoff before it is reported).
    public var isThrottling: Bool {
        guard case .aws(let status, let code) = code else { return false }
        return status == 429 || Self.throttlingCodes.contains(code)
    }

    /// AWS refused the credentials (Lambda answers 403, JSON 1.1 services such as SSM 400).
    public var isAuthenticationFailure: Bool {
        guard let awsErrorCode else { return false }
        return LambdaInvokeError.authenticationErrorCodes.contains(awsErrorCode)
    }

    /// The codes the AWS SDKs treat as throttling, whatever the status.
    static let throttlingCodes: Set<String> = [
        "ThrottlingException", "TooManyRequestsException", "ThrottledException", "RequestLimitExceeded",
        "Throttling", "RequestThrottled", "RequestThrottledException", "ProvisionedThroughputExceededException",
        "SlowDown", "BandwidthLimitExceeded", "PriorRequestNotComplete",
    ]

    /// Codes of a 4xx answer that the AWS SDKs treat as transient.
    static let transientCodes: Set<String> = ["RequestTimeout", "RequestTimeoutException"]

    public var description: String {
        if let awsErrorCode { return "\(awsErrorCode): \(message)" }
        return message
    }
}

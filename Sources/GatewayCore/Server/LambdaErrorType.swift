import LambdaInvoke

/// Why a Lambda call failed, as the `error_type` label of `lambda_gateway_lambda_errors_total`: the
/// AWS error type when Lambda named one the gateway knows (AWS Lambda Invoke API reference, Errors), the function's own
/// failure, or the gateway's name for a local one. A bounded set, whatever an endpoint sends.
public struct LambdaErrorType: RawRepresentable, Hashable, Sendable {
    public let rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// The Invoke API's error types (AWS Lambda Invoke API reference, Errors) and the common AWS layer's authentication ones.
    static let awsTypes: Set<String> = Set([
        "InvalidParameterValueException", "InvalidRequestContentException", "RecursiveInvocationException", "SnapStartException",
        "EFSMountFailureException", "ResourceNotFoundException", "EFSMountConnectivityException", "EFSMountTimeoutException",
        "SnapStartTimeoutException", "ResourceConflictException", "SnapStartNotReadyException", "EFSIOException",
        "RequestTooLargeException", "RequestEntityTooLargeException", "UnsupportedMediaTypeException", "TooManyRequestsException",
        "ServiceException", "EC2AccessDeniedException", "EC2ThrottledException", "EC2UnexpectedException", "ENILimitReachedException",
        "InvalidRuntimeException", "InvalidSecurityGroupIDException", "InvalidSubnetIDException", "InvalidZipFileException",
        "KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException",
        "ResourceNotReadyException", "SubnetIPAddressLimitReachedException",
    ]).union(LambdaInvokeError.authenticationErrorCodes)

    /// Lambda answered with an error type outside `awsTypes`.
    public static let otherAWSError = LambdaErrorType(rawValue: "OtherAWSError")
    /// The function failed with `X-Amz-Function-Error` other than `Unhandled` or `Handled`.
    public static let functionError = LambdaErrorType(rawValue: "FunctionError")
    /// The function's answer could not be turned into an HTTP response.
    public static let invalidFunctionResponse = LambdaErrorType(rawValue: "InvalidFunctionResponse")

    /// The type of a failed Invoke call.
    public init(_ error: LambdaInvokeError) {
        switch error.code {
        case .aws(_, let code): self = Self.awsTypes.contains(code) ? LambdaErrorType(rawValue: code) : .otherAWSError
        case .payloadTooLarge: self.init(rawValue: "PayloadTooLarge")
        case .noCredentials: self.init(rawValue: "CredentialsUnavailable")
        case .endpointUnreachable: self.init(rawValue: "ConnectionFailure")
        case .connectionLost: self.init(rawValue: "ConnectionLost")
        case .timeout: self.init(rawValue: "Timeout")
        case .responseTooLarge: self.init(rawValue: "ResponseTooLarge")
        case .invalidTarget: self.init(rawValue: "InvalidTarget")
        case .tooManyStreams: self.init(rawValue: "TooManyStreams")
        }
    }

    /// The type of a function's own failure (`X-Amz-Function-Error`).
    public init(functionError: String) {
        self = functionError == "Unhandled" || functionError == "Handled" ? LambdaErrorType(rawValue: functionError) : .functionError
    }
}

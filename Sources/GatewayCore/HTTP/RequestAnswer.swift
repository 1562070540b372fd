import LambdaInvoke
import LambdaPayload
import NIOCore

extension RequestProcessor {
    /// A response, and what it means for `/metrics` and the access log: the outcome, why
    /// (`%RESPONSE_CODE_DETAILS%`, one of `ResponseCodeDetails`), Envoy's response flags, and the
    /// Lambda call behind it, if one was made.
    ///
    /// A value with its fields in one shared box, copied only when a copy is changed (as `Array`
    /// does): an answer is handed along several times between the Lambda call and the access log
    /// (the processor's completion, the connection's next answer, the write's completion), and
    /// each copy of a dozen fields retained and released each string and array in them.
    struct Answer {
        private var storage: Storage

        init(response: LambdaHTTPResponse, outcome: RequestOutcome, details: String, lambdaErrorType: LambdaErrorType? = nil) {
            storage = Storage(response: response, outcome: outcome, details: details, lambdaErrorType: lambdaErrorType)
        }

        /// The box, copied first if another answer shares it.
        private mutating func uniqueStorage() -> Storage {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(copying: storage) }
            return storage
        }

        var response: LambdaHTTPResponse {
            get { storage.response }
            _modify { yield &uniqueStorage().response }
        }
        var outcome: RequestOutcome {
            get { storage.outcome }
            _modify { yield &uniqueStorage().outcome }
        }
        var details: String {
            get { storage.details }
            _modify { yield &uniqueStorage().details }
        }
        var flags: ResponseFlags {
            get { storage.flags }
            _modify { yield &uniqueStorage().flags }
        }
        var lambdaErrorType: LambdaErrorType? {
            get { storage.lambdaErrorType }
            _modify { yield &uniqueStorage().lambdaErrorType }
        }
        /// The Invoke call's duration in nanoseconds, when one was made (an integer: a `Duration`'s
        /// 128-bit attoseconds cost a division each time they are read as nanoseconds).
        var lambdaCallNanoseconds: Int? {
            get { storage.lambdaCallNanoseconds }
            _modify { yield &uniqueStorage().lambdaCallNanoseconds }
        }
        /// Requests sent to Lambda for it, retries included, when a call was made.
        var attempts: Int? {
            get { storage.attempts }
            _modify { yield &uniqueStorage().attempts }
        }
        /// `host:port` of the Lambda endpoint called (only filled while the access log is on).
        var upstreamHost: String? {
            get { storage.upstreamHost }
            _modify { yield &uniqueStorage().upstreamHost }
        }
        /// The local address of the connection to Lambda the answer came on.
        var upstreamLocalAddress: String? {
            get { storage.upstreamLocalAddress }
            _modify { yield &uniqueStorage().upstreamLocalAddress }
        }
        /// The caller's trace id, when the request carried a trace the Invoke call passed on.
        var traceID: String? {
            get { storage.traceID }
            _modify { yield &uniqueStorage().traceID }
        }
        /// Why no connection to Lambda could be made or kept (`%UPSTREAM_TRANSPORT_FAILURE_REASON%`).
        var transportFailureReason: String? {
            get { storage.transportFailureReason }
            _modify { yield &uniqueStorage().transportFailureReason }
        }
        /// A streamed answer: when its call started (its duration is known only at its end), and,
        /// once it ended, whether it completed.
        var streamStarted: NIODeadline? {
            get { storage.streamStarted }
            _modify { yield &uniqueStorage().streamStarted }
        }
        var streamed: StreamedResult? {
            get { storage.streamed }
            _modify { yield &uniqueStorage().streamed }
        }

        /// Changed only through an answer that holds it alone (`uniqueStorage`), so no two
        /// threads ever change one, nor read one that is changing.
        private final class Storage: @unchecked Sendable {
            var response: LambdaHTTPResponse
            var outcome: RequestOutcome
            var details: String
            var flags: ResponseFlags = []
            var lambdaErrorType: LambdaErrorType? = nil
            var lambdaCallNanoseconds: Int? = nil
            var attempts: Int? = nil
            var upstreamHost: String? = nil
            var upstreamLocalAddress: String? = nil
            var traceID: String? = nil
            var transportFailureReason: String? = nil
            var streamStarted: NIODeadline? = nil
            var streamed: StreamedResult? = nil

            init(response: LambdaHTTPResponse, outcome: RequestOutcome, details: String, lambdaErrorType: LambdaErrorType?) {
                self.response = response
                self.outcome = outcome
                self.details = details
                self.lambdaErrorType = lambdaErrorType
            }

            init(copying other: Storage) {
                response = other.response
                outcome = other.outcome
                details = other.details
                flags = other.flags
                lambdaErrorType = other.lambdaErrorType
                lambdaCallNanoseconds = other.lambdaCallNanoseconds
                attempts = other.attempts
                upstreamHost = other.upstreamHost
                upstreamLocalAddress = other.upstreamLocalAddress
                traceID = other.traceID
                transportFailureReason = other.transportFailureReason
                streamStarted = other.streamStarted
                streamed = other.streamed
            }
        }

        /// Answered before any Lambda call, for a reason of the request's own: `code` is the error
        /// code of the answer's body, and its details are `rejected{code}`.
        static func rejected(status: Int, code: String, message: String) -> Answer {
            Answer(response: .error(status: status, code: code, message: message), outcome: .rejected, details: ResponseCodeDetails.rejected(code))
        }

        /// The service is no longer served (unlinked after the connection was made): Envoy's `NR`.
        static func notServed(_ service: String) -> Answer {
            var answer = rejected(status: 503, code: "ServiceNotServed", message: "\(service) is no longer served by this gateway")
            answer.details = ResponseCodeDetails.routeNotFound
            answer.flags = .noRouteFound
            return answer
        }

        /// A head begun and not complete within the head timeout (Envoy's `request_header_timeout`).
        static let headerTimeout = Answer(
            response: .error(status: 408, code: "RequestTimeout", message: "the request head was not complete within the head timeout"), outcome: .rejected,
            details: ResponseCodeDetails.requestHeaderTimeout)

        /// Intentions denied the caller.
        static let denied = Answer(response: RequestProcessor.accessDenied, outcome: .denied, details: ResponseCodeDetails.rbacAccessDenied)

        /// A failed Invoke call.
        static func invokeFailed(_ error: LambdaInvokeError) -> Answer {
            var extra: [HTTPField] = []
            if error.isThrottling, let retryAfter = error.retryAfter { extra.append(HTTPField("retry-after", String(retryAfter))) }
            if case .tooManyStreams = error.code { extra.append(HTTPField("retry-after", "1")) }
            let type = LambdaErrorType(error)
            var answer = Answer(
                response: .error(status: error.clientStatus, code: error.errorName, message: error.message, headers: extra),
                outcome: .invokeError, details: ResponseCodeDetails.invokeFailure(error.code, type: type), lambdaErrorType: type
            )
            answer.upstreamLocalAddress = error.upstreamLocalAddress
            switch error.code {
            case .timeout: answer.flags = .upstreamRequestTimeout
            case .endpointUnreachable:
                answer.flags = .upstreamConnectionFailure
                answer.transportFailureReason = error.message
            case .connectionLost:
                answer.flags = .upstreamConnectionTermination
                answer.transportFailureReason = error.message
            case .tooManyStreams:
                answer.flags = .upstreamOverflow
            default:
                // Throttled again after the gateway's one retry: Envoy's `URX`, retries exhausted.
                if error.isThrottling && error.failedAfterThrottlingRetry { answer.flags = .upstreamRetryLimitExceeded }
            }
            return answer
        }
    }
}

/// The `%RESPONSE_CODE_DETAILS%` values of the gateway: stable, documented in the README
/// (Observability), so a log query or an alert can rely on them.
public enum ResponseCodeDetails {
    /// The function answered; its answer went back, whatever status it chose (Envoy's own value).
    public static let viaUpstream = "via_upstream"
    /// The function failed (`X-Amz-Function-Error`: `Unhandled` or `Handled`).
    public static let functionError = "lambda_function_error"
    /// The function's answer cannot be turned into an HTTP response.
    public static let invalidFunctionResponse = "lambda_invalid_function_response"
    /// Lambda throttled the call (429 `TooManyRequestsException`), after the one retry the gateway allows.
    public static let throttled = "lambda_throttled"
    /// The payload is over Lambda's limit (413, from Lambda or before sending).
    public static let payloadTooLarge = "lambda_payload_too_large"
    /// No usable AWS credentials: nothing was sent (503).
    public static let credentialsMissing = "lambda_credentials_missing"
    /// No connection to Lambda could be made (503, flag `UF`).
    public static let upstreamConnectionFailure = "upstream_connection_failure"
    /// The connection to Lambda ended before its answer did (502, flag `UC`).
    public static let upstreamConnectionTermination = "upstream_connection_termination"
    /// The call's deadline passed (504, flag `UT`; Envoy's value).
    public static let upstreamTimeout = "upstream_response_timeout"
    /// Lambda's answer was over the response limit (502).
    public static let responseTooLarge = "lambda_response_too_large"
    /// The function cannot be addressed: ARN or endpoint configuration (502).
    public static let invalidTarget = "lambda_invalid_target"
    /// As many streamed answers as the gateway allows at once are in progress (503): streams hold
    /// their pooled connection to Lambda for as long as the caller reads, and may not take them all.
    public static let tooManyStreams = "lambda_too_many_streams"
    /// Intentions denied the caller (403).
    public static let rbacAccessDenied = "rbac_access_denied"
    /// The connection's service is no longer served (503, flag `NR`; Envoy's value).
    public static let routeNotFound = "route_not_found"
    /// A listener line: no served service for the SNI, or no SNI (flag `NR`; Envoy's value).
    public static let filterChainNotFound = "filter_chain_not_found"
    /// HTTP/1.1 that cannot be parsed (400) or whose head is over the limits (431).
    public static let codecError = "http1.codec_error"
    public static let headersTooLarge = "http1.headers_too_large"
    /// A head begun and not complete within `--request-headers-timeout` (408; Envoy's value).
    public static let requestHeaderTimeout = "request_header_timeout"
    /// A streamed answer broke off after its head was sent (the connection to Lambda lost, a bad
    /// frame, the deadline): the client sees an incomplete response (Envoy's value).
    public static let streamBroken = "upstream_reset_after_response_started{connection_termination}"
    /// The function failed after its streamed answer had begun (`InvokeComplete` with an `ErrorCode`).
    public static let streamFunctionError = "lambda_function_error_after_response_started"

    /// Lambda refused the call with another AWS error: `lambda_error{ResourceNotFoundException}`
    /// (the type as `lambda_gateway_lambda_errors_total` labels it).
    public static func lambdaError(_ type: LambdaErrorType) -> String { "lambda_error{\(type.rawValue)}" }

    /// Refused for a reason of the request's own, by the error code of the answer's body:
    /// `rejected{RequestTooLarge}`, `rejected{MissingHost}`, `rejected{RequestTimeout}`...
    public static func rejected(_ code: String) -> String { "rejected{\(code)}" }

    /// A listener line for a refused client certificate: `client_certificate_refused{untrusted_client_certificate}`.
    public static func certificateRefused(_ reason: String) -> String { "client_certificate_refused{\(reason)}" }

    static func invokeFailure(_ code: LambdaInvokeError.Code, type: LambdaErrorType) -> String {
        switch code {
        case .aws(429, _): throttled
        case .aws(413, _), .payloadTooLarge: payloadTooLarge
        case .aws: lambdaError(type)
        case .noCredentials: credentialsMissing
        case .endpointUnreachable: upstreamConnectionFailure
        case .connectionLost: upstreamConnectionTermination
        case .timeout: upstreamTimeout
        case .responseTooLarge: responseTooLarge
        case .invalidTarget: invalidTarget
        case .tooManyStreams: tooManyStreams
        }
    }
}

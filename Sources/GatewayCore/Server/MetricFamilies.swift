import Prometheus

/// The names of the gateway's metric families, and their `# HELP` texts: one place to read them all
/// (the README's Observability section lists them with their labels).
enum Family {
    static let requests = "lambda_gateway_requests_total"
    static let requestDuration = "lambda_gateway_request_duration_seconds"
    static let lambdaCallDuration = "lambda_gateway_lambda_call_duration_seconds"
    static let requestBytes = "lambda_gateway_request_body_bytes_total"
    static let responseBytes = "lambda_gateway_response_body_bytes_total"
    static let lambdaErrors = "lambda_gateway_lambda_errors_total"
    static let streamedResponses = "lambda_gateway_streamed_responses_total"
    static let streamedBytes = "lambda_gateway_streamed_response_bytes_total"
    static let handshakeFailures = "lambda_gateway_tls_handshake_failures_total"
    static let connectionsClosed = "lambda_gateway_connections_closed_total"
    static let consulWatchErrors = "lambda_gateway_consul_watch_errors_total"
    static let accessLogLines = "lambda_gateway_access_log_lines_total"
    static let accessLogDropped = "lambda_gateway_access_log_lines_dropped_total"
}

enum Help {
    static let requests = "Requests answered, by linked service, HTTP status and outcome (invoked, function_error, invoke_error, denied, rejected)."
    static let requestDuration = "End-to-end request duration, from the request's first byte to the response's last byte, by linked service."
    static let lambdaCallDuration = "Duration of the Lambda Invoke call alone (signing to the whole answer read, retries included), by linked service."
    static let requestBytes = "Request body bytes received, by linked service."
    static let responseBytes = "Response body bytes sent, by linked service."
    static let lambdaErrors =
        "Lambda calls that failed, by linked service and error type: the AWS error type, Unhandled or Handled for function errors, or the gateway's own (Timeout, ConnectionFailure, CredentialsUnavailable, ...)."
    static let streamedResponses =
        "Streamed answers (services in RESPONSE_STREAM mode) whose head was sent, by linked service and how they ended: complete, or incomplete (broken off mid-stream: the client saw an incomplete response)."
    static let streamedBytes = "Body bytes of streamed answers sent, by linked service (also counted in lambda_gateway_response_body_bytes_total)."
    static let handshakeFailures = "TLS handshakes on the mesh listener that did not complete, by reason."
    static let connectionsClosed = "Client connections the gateway closed itself to protect the others, by reason."
    static let consulWatchErrors = "Consul watch requests that failed (the last answer is kept), by endpoint."
    static let accessLogLines = "Access-log lines handed to the sink."
    static let accessLogDropped =
        "Access-log lines not written, by reason: sink_behind (the sink was slower than the traffic; requests never wait for the log), sink_failed, rate_limited (listener lines)."
}

extension PrometheusCollectorRegistry {
    /// A counter of the family `name` (a whole name from `Family`), with its `# HELP`.
    func counter(_ name: String, labels: [(String, String)] = [], help: String) -> Counter {
        makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }
}

import LambdaInvoke
import LambdaPayload
import Logging

/// The last step: Lambda's answer, or the failure to get one, as the client's response.
extension RequestProcessor {
    /// Lambda's answer, or the failure to get one, as the client's response.
    func finish(_ call: Call, result: Result<LambdaInvocationResult, LambdaInvokeError>) -> Answer {
        var answer: Answer
        switch result {
        case .success(let result):
            do {
                let response = try ResponseDecoder.response(for: result, format: call.lambda.payloadFormat, passthrough: call.lambda.passthrough, method: call.method)
                if let functionError = result.functionError {
                    answer = Answer(response: response, outcome: .functionError, details: ResponseCodeDetails.functionError, lambdaErrorType: LambdaErrorType(functionError: functionError))
                } else {
                    answer = Answer(response: response, outcome: .invoked, details: ResponseCodeDetails.viaUpstream)
                }
            } catch {
                logger.info("function result cannot be mapped", metadata: ["service": "\(call.serviceName)", "error": "\(LogSafe.text(error.message))"])
                answer = Answer(
                    response: .error(status: 502, code: error.code.rawValue, message: error.message), outcome: .functionError,
                    details: ResponseCodeDetails.invalidFunctionResponse, lambdaErrorType: .invalidFunctionResponse
                )
            }
            answer.upstreamLocalAddress = result.upstreamLocalAddress
        case .failure(let error):
            var metadata: Logger.Metadata = ["service": "\(call.serviceName)", "error": "\(LogSafe.text("\(error)", limit: 1024))"]
            if let traceID = call.traceID { metadata["trace_id"] = "\(LogSafe.text(traceID))" }
            logger.info("lambda invocation failed", metadata: metadata)
            answer = .invokeFailed(error)
        }
        describeCall(call, in: &answer)
        return answer
    }

    /// What the access log says of the call behind an answer: the caller's trace, the endpoint.
    func describeCall(_ call: Call, in answer: inout Answer) {
        answer.traceID = call.traceID
        if accessLog?.settings != nil, let endpoint = try? invoker.configuration.endpoints.endpoint(for: call.invocation.function) {
            answer.upstreamHost = endpoint.authority
        }
    }
}

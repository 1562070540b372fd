import LambdaInvoke
import LambdaPayload

/// The last step: Lambda's answer, or the failure to get one, as the client's response.
extension RequestProcessor {
    /// Lambda's answer, or the failure to get one, as the client's response.
    func finish(_ call: Call, result: Result<LambdaInvocationResult, LambdaInvokeError>) -> Answer {
        let service = call.service
        switch result {
        case .success(let result):
            do {
                let response = try ResponseDecoder.response(for: result, format: service.lambda.payloadFormat, passthrough: service.lambda.passthrough, method: call.method)
                return Answer(response: response, outcome: result.functionError == nil ? .invoked : .functionError)
            } catch {
                logger.info("function result cannot be mapped", metadata: ["service": "\(service.name)", "error": "\(LogSafe.text(error.message))"])
                return Answer(response: .error(status: 502, code: error.code.rawValue, message: error.message), outcome: .functionError)
            }
        case .failure(let error):
            logger.info("lambda invocation failed", metadata: ["service": "\(service.name)", "error": "\(LogSafe.text("\(error)", limit: 1024))"])
            var extra: [HTTPField] = []
            if error.isThrottling, let retryAfter = error.retryAfter { extra.append(HTTPField("retry-after", String(retryAfter))) }
            return Answer(response: .error(status: error.clientStatus, code: error.errorName, message: error.message, headers: extra), outcome: .invokeError)
        }
    }
}

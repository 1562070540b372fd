import LambdaInvoke
import LambdaPayload
import Tracing

/// The gateway's own span around the Lambda call, when a tracer is bootstrapped
/// (`InstrumentationSystem.bootstrap` with swift-otel, say, in a build of one's own). The default
/// build has none: `RequestProcessor.tracer` is nil and this code never runs, so tracing off costs
/// one optional check per request.
///
/// The span continues the caller's trace (the tracer reads its own headers from the request) and
/// becomes the function's parent: the tracer writes the span's context into a header list, which
/// `TraceContext` maps to the call's `X-Amzn-Trace-Id` as it maps a caller's.
extension RequestProcessor {
    /// The tracer bootstrapped with `InstrumentationSystem.bootstrap`, or nil when none was (the
    /// default `NoOpTracer`).
    public static var bootstrappedTracer: (any Tracer)? {
        let tracer = InstrumentationSystem.tracer
        return tracer is NoOpTracer ? nil : tracer
    }

    func tracedCall(_ call: Call, headers: [HTTPField], tracer: any Tracer, invoke: (Call) async -> Processed) async -> Processed {
        var context = ServiceContext.topLevel
        tracer.extract(headers, into: &context, using: HTTPFieldsPropagation())
        let span = tracer.startSpan("Lambda.Invoke", context: context, ofKind: .client)
        span.attributes["rpc.system"] = "aws-api"
        span.attributes["rpc.service"] = "Lambda"
        span.attributes["rpc.method"] = "Invoke"
        span.attributes["faas.invoked_provider"] = "aws"
        span.attributes["faas.invoked_name"] = call.invocation.function.functionName
        span.attributes["faas.invoked_region"] = call.invocation.function.region
        span.attributes["lambda_gateway.service"] = call.serviceName
        var call = call
        var carrier: [HTTPField] = []
        tracer.inject(span.context, into: &carrier, using: HTTPFieldsPropagation())
        if let trace = TraceContext(headers: carrier) {
            // The function's trace, and so the one the access log and the log lines name.
            var invocation = call.invocation
            invocation.traceHeader = settings.honorCallerSampling ? trace.amazonTraceHeader : trace.withoutSamplingDecision.amazonTraceHeader
            call = call.with(invocation: invocation, traceID: trace.traceID)
        }
        var processed = await invoke(call)
        // W3C `traceresponse`: the caller learns the gateway's span (its trace, the span's id) when
        // the tracer propagates W3C trace context; the function's own value, if any, is replaced.
        if let traceparent = HTTPFieldsPropagation().extract(key: "traceparent", from: carrier) {
            processed.answer.response.headers.removeAll { $0.name.asciiCaseInsensitiveEquals("traceresponse") }
            processed.answer.response.headers.append(HTTPField("traceresponse", traceparent))
        }
        let answer = processed.answer
        span.attributes["http.response.status_code"] = answer.response.status
        span.attributes["lambda_gateway.outcome"] = answer.outcome.rawValue
        if let attempts = answer.attempts { span.attributes["lambda_gateway.attempts"] = attempts }
        if let type = answer.lambdaErrorType {
            span.attributes["error.type"] = type.rawValue
            span.setStatus(SpanStatus(code: .error, message: answer.details))
        }
        span.end()
        return processed
    }
}

/// Reads and writes a tracer's headers in a request's header list (names without regard to case).
struct HTTPFieldsPropagation: Extractor, Injector {
    func extract(key: String, from carrier: [HTTPField]) -> String? {
        carrier.first { $0.name.asciiCaseInsensitiveEquals(key) }?.value
    }

    func inject(_ value: String, forKey key: String, into carrier: inout [HTTPField]) {
        carrier.append(HTTPField(key, value))
    }
}

import Foundation
import LambdaInvoke
import LambdaPayload
import NIOCore

/// The second step: the admitted request as the Invoke call (limits, forwarded headers, the
/// service's payload format).
extension RequestProcessor {
    /// What `prepare` decided: answer at once, or make this Lambda call.
    enum Preparation {
        /// Boxed, as refusals are rare: the usual preparation, a call, is then one reference.
        indirect case answer(Answer)
        case invoke(Call)
    }

    /// A class: a call is handed along whole several times (the preparation, the Invoke
    /// completion's closure, the answer's making), and as a struct each hand-off copied its ~660
    /// bytes and retained the two dozen strings and arrays in them.
    ///
    /// Of its service it keeps the name and the Lambda settings, not the whole `ServedService`
    /// (leaf, intentions, SNIs), whose copy retained a dozen more references.
    final class Call: Sendable {
        let invocation: InvokeRequest
        let serviceName: String
        let lambda: LambdaSettings
        let method: String
        /// The caller's trace id, when it sent a trace (`TraceContext`).
        let traceID: String?

        init(invocation: InvokeRequest, serviceName: String, lambda: LambdaSettings, method: String, traceID: String?) {
            self.invocation = invocation
            self.serviceName = serviceName
            self.lambda = lambda
            self.method = method
            self.traceID = traceID
        }

        /// The same call with another invocation (its payload hashed, a trace header set) and trace id.
        func with(invocation: InvokeRequest, traceID: String?) -> Call {
            Call(invocation: invocation, serviceName: serviceName, lambda: lambda, method: method, traceID: traceID)
        }
    }

    /// Everything before the Lambda call, synchronously: the head's checks (`admit`) → limits →
    /// payload.
    func prepare(_ request: GatewayRequest, connection: ClientConnection, budget: ResponseBudget? = nil) -> Preparation {
        let admitted: Admitted
        switch admit(method: request.method, target: request.target, headers: request.headers, connection: connection) {
        case .admitted(let taken): admitted = taken
        case .refused(let answer): return .answer(answer)
        }
        let service = admitted.service
        let asynchronous = service.lambda.invocationType == .event
        let limit = asynchronous ? settings.maximumAsyncPayloadBytes : settings.maximumSyncPayloadBytes
        guard request.body.readableBytes <= limit else {
            return .answer(.rejected(status: 413, code: "RequestTooLarge", message: "the request body is over the \(limit)-byte limit"))
        }

        let view = HTTPRequestView(
            method: request.method,
            path: admitted.path,
            query: admitted.query,
            headers: forwardedHeaders(request.headers, connection: connection, sanitize: admitted.sanitizeXFCC),
            authority: request.headers.first { $0.name.asciiCaseInsensitiveEquals("host") || $0.name == ":authority" }?.value,
            body: request.body,
            protocolName: request.protocolName,
            sourceIP: connection.peerIP,
            receivedAt: Date()
        )
        let payload: ByteBuffer
        do {
            payload = try RequestEncoder.encode(
                view,
                format: service.lambda.payloadFormat,
                passthrough: service.lambda.passthrough,
                context: PayloadContext(serviceName: service.name, accountID: service.lambda.function.accountID)
            )
        } catch {
            return .answer(.rejected(status: 400, code: error.code.rawValue, message: error.message))
        }
        guard payload.readableBytes <= limit else {
            return .answer(.rejected(status: 413, code: "RequestTooLarge", message: "the Lambda payload would be \(payload.readableBytes) bytes, over the \(limit)-byte limit"))
        }

        let idempotent = Self.isIdempotent(request.method)
        // The caller's trace goes on to the function's X-Ray segment.
        let trace = TraceContext(headers: request.headers)
        // Made in place, as the call's own: a local first would be copied into the call.
        let invocation = InvokeRequest(
            function: service.lambda.function,
            payload: payload,
            invocationType: service.lambda.invocationType,
            timeout: service.requestTimeout ?? settings.defaultRequestTimeout,
            mayRetryThrottling: idempotent,
            budget: budget,
            traceHeader: settings.honorCallerSampling ? trace?.amazonTraceHeader : trace?.withoutSamplingDecision.amazonTraceHeader,
            payloadPrefix: connection.payloadPrefix
        )
        return .invoke(Call(invocation: invocation, serviceName: service.name, lambda: service.lambda, method: request.method, traceID: trace?.traceID))
    }

    /// Whether a throttled call for `method` may be sent again (RFC 9110 §9.2.2's idempotent
    /// methods). A switch: an array literal to search was an array made on every request.
    static func isIdempotent(_ method: String) -> Bool {
        switch method {
        case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE": true
        default: false
        }
    }

    /// The client's headers plus what the gateway adds (docs/ARCHITECTURE.md, RequestProcessor: prepare). A direct
    /// caller has no certificate: its own `x-forwarded-client-cert` passes unless sanitizing.
    func forwardedHeaders(_ headers: [HTTPField], connection: ClientConnection, sanitize: Bool) -> [HTTPField] {
        // One pass over the client's fields: the names the gateway sets are told apart by length
        // first, as most fields are none of them.
        var result: [HTTPField] = []
        result.reserveCapacity(headers.count + 3)
        var incoming: [String] = []
        var hasProto = false
        var hasRequestID = false
        let mesh: PreEscapedString?
        if case .mesh(_, let element) = connection.caller { mesh = element } else { mesh = nil }
        for field in headers {
            switch field.name.utf8.count {
            case 23 where field.name.asciiCaseInsensitiveEquals("x-forwarded-client-cert"):
                // A mesh caller's are merged into the gateway's own below; a direct caller's pass.
                if mesh != nil {
                    incoming.append(field.value)
                    continue
                }
                if sanitize { continue }
            case 17 where field.name.asciiCaseInsensitiveEquals("x-forwarded-proto"):
                hasProto = true
            case 12 where field.name.asciiCaseInsensitiveEquals("x-request-id"):
                hasRequestID = true
            default:
                break
            }
            result.append(field)
        }
        if let element = mesh {
            if incoming.isEmpty && !sanitize {
                result.append(HTTPField(ForwardedClientCert.fieldName, element))
            } else if let value = ForwardedClientCert.headerValue(incoming: incoming.isEmpty ? nil : incoming.joined(separator: ","), element: element.text, sanitize: sanitize) {
                result.append(HTTPField(ForwardedClientCert.fieldName, value))
            }
        }
        if !hasProto { result.append(HTTPField("x-forwarded-proto", mesh == nil ? "http" : "https")) }
        if !hasRequestID { result.append(HTTPField("x-request-id", requestIDs.next())) }
        return result
    }
}

import Atomics
import Foundation
import LambdaInvoke
import LambdaPayload
import Logging
import MeshIdentity
import NIOCore
import Synchronization

/// One complete client request, as any HTTP version delivers it.
public struct GatewayRequest: Sendable {
    public var method: String
    /// The request target as received (origin-form or absolute-form).
    public var target: String
    public var headers: [HTTPField]
    public var body: ByteBuffer
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0`.
    public var protocolName: String

    public init(method: String, target: String, headers: [HTTPField], body: ByteBuffer, protocolName: String) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.protocolName = protocolName
    }
}

/// Request limits and defaults (lambda.md §7).
public struct ProcessingSettings: Sendable {
    public var defaultRequestTimeout: Duration = .seconds(15)
    public var maximumSyncPayloadBytes = 6_291_456
    public var maximumAsyncPayloadBytes = 1_048_576
    /// A client connection with no bytes either way for this long is closed (Envoy's default,
    /// mesh-identity.md §9.2). An HTTP/1.1 connection waiting for its answer is never idle.
    public var idleTimeout: Duration = .seconds(3600)
    /// A draining HTTP/2 connection (its service left the configuration, or shutdown) is closed
    /// after this long even if streams are still open.
    public var drainGraceTime: Duration = .seconds(30)
    /// A request's head must be complete this long after its first byte, and a new connection's
    /// first request head this long after the connection is ready (nginx's
    /// `client_header_timeout`, 60 s; Envoy's `request_headers_timeout` is off by default).
    public var requestHeadersTimeout: Duration = .seconds(30)
    /// The longest pause between two pieces of a request body (nginx's `client_body_timeout`, 60 s).
    /// A body cut off this way is answered 408 and never reaches the function.
    public var clientBodyTimeout: Duration = .seconds(30)
    /// A connection whose answers make no progress to the socket for this long is closed and its
    /// buffers freed (nginx's `send_timeout`, 60 s).
    public var sendTimeout: Duration = .seconds(60)
    /// Answer bytes one connection may hold for a client that does not read them (Envoy's
    /// `per_connection_buffer_limit_bytes` is 1 MiB, but a Lambda answer is up to 6 MB and must be
    /// held whole). Over it, no new request on the connection starts and Lambda answers for it wait
    /// unread.
    public var connectionBufferLimit = 16 * 1024 * 1024
    /// Client connections per listener; a new one beyond it is closed at once.
    public var maxConnections = 10_000
    /// HTTP/2 streams a client may have open at once on one connection (RFC 9113 recommends at
    /// least 100; nginx allows 128; each may hold a Lambda answer).
    public var maxConcurrentStreams = 100
    public init() {}
}

/// Turns an authenticated request into a Lambda call and its answer into a response:
/// service still served → path normalized → intentions → payload → Invoke → response mapping.
/// Everything but the call itself is synchronous (`prepare`, `finish`).
public final class RequestProcessor: Sendable {
    let store: SnapshotStore
    let invoker: LambdaInvokeClient
    public let settings: ProcessingSettings
    let logger: Logger
    private let inFlight = ManagedAtomic<Int>(0)
    private let requestIDs = RequestIDGenerator()
    public let metrics: GatewayMetrics
    /// Established connections by service, drained when their service stops being served.
    public let connections = OpenConnections()
    /// Compiled intentions per (snapshot version, service); a new snapshot replaces them all.
    private let evaluators = Mutex<(version: UInt64, byService: [String: IntentionEvaluator])>((0, [:]))

    public init(store: SnapshotStore, invoker: LambdaInvokeClient, settings: ProcessingSettings = ProcessingSettings(), metrics: GatewayMetrics = GatewayMetrics(), logger: Logger) {
        self.store = store
        self.invoker = invoker
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        let connections = self.connections
        store.onPublish { previous, current in
            for service in previous.services.keys where current.services[service] == nil {
                let drained = connections.drain(service: service)
                if drained > 0 { logger.info("service no longer served; draining its connections", metadata: ["service": "\(service)", "connections": "\(drained)"]) }
            }
        }
    }

    public static let accessDenied = LambdaHTTPResponse(
        status: 403,
        headers: [HTTPField("content-type", "text/plain")],
        body: ByteBuffer(string: "RBAC: access denied")
    )

    public var inFlightCount: Int { inFlight.load(ordering: .relaxed) }

    /// Waits until no request is in flight, or `timeout` passes (graceful shutdown).
    public func waitUntilIdle(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while inFlightCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// A response, and the bytes of the connection's answer budget it still holds (the Lambda
    /// answer it was built from): the handler gives them back once it has accounted for the
    /// response it writes, or at once when it writes none.
    struct Processed {
        var response: LambdaHTTPResponse
        var heldBytes: Int
    }

    /// The request's answer, on `eventLoop` (the connection's): admit → payload → sign → invoke →
    /// response, as callbacks on that loop, with no task unless the call must wait (see
    /// `LambdaInvokeClient.invoke(_:on:)`). `budget`: the client connection's answer bytes, which
    /// pace reading Lambda's answer.
    func process(_ request: GatewayRequest, connection: ClientConnection, budget: ResponseBudget?, answeringOn eventLoop: any EventLoop) -> EventLoopFuture<Processed> {
        inFlight.wrappingIncrement(ordering: .relaxed)
        switch prepare(request, connection: connection, budget: budget) {
        case .answer(let early):
            answered(early, connection: connection)
            inFlight.wrappingDecrement(ordering: .relaxed)
            return eventLoop.makeSucceededFuture(Processed(response: early.response, heldBytes: 0))
        case .invoke(let call):
            let started = NIODeadline.now()
            let promise = eventLoop.makePromise(of: Processed.self)
            invoker.invoke(call.invocation, on: eventLoop) { result in
                let lambdaCall = Duration.nanoseconds((NIODeadline.now() - started).nanoseconds)
                let answer = self.finish(call, result: result)
                self.answered(answer, connection: connection, lambdaCall: lambdaCall)
                self.inFlight.wrappingDecrement(ordering: .relaxed)
                promise.succeed(Processed(response: answer.response, heldBytes: (try? result.get())?.heldBytes ?? 0))
            }
            return promise.futureResult
        }
    }

    /// Counts a request's answer (and its Lambda call's duration); the HTTP/1.1 handler calls this
    /// too for answers it gives itself.
    func answered(_ answer: Answer, connection: ClientConnection, lambdaCall: Duration? = nil) {
        metrics.requestCompleted(service: connection.serviceName, status: answer.response.status, outcome: answer.outcome, lambdaCall: lambdaCall)
    }

    /// A response and what it means for `/metrics`.
    struct Answer {
        var response: LambdaHTTPResponse
        var outcome: RequestOutcome

        /// Answered before any Lambda call, for a reason of the request's own.
        static func rejected(_ response: LambdaHTTPResponse) -> Answer {
            Answer(response: response, outcome: .rejected)
        }
    }

    /// What `prepare` decided: answer at once, or make this Lambda call.
    enum Preparation {
        case answer(Answer)
        case invoke(Call)
    }

    struct Call {
        var invocation: InvokeRequest
        var service: ServedService
        var method: String
    }

    /// What the head's checks decided: take the request on, or answer at once.
    enum Admission {
        case admitted(Admitted)
        case refused(Answer)
    }

    /// A request taken on: its service as of `snapshot`, and its normalized path.
    struct Admitted {
        var snapshot: GatewaySnapshot
        var service: ServedService
        var path: String
        var query: String?
    }

    /// The checks that need only the request head: service still served → path normalized →
    /// intentions. `Expect: 100-continue` is answered only after these pass (mesh-identity.md §9.2),
    /// so the HTTP/1.1 handler also calls this on the head.
    func admit(method: String, target: String, headers: [HTTPField], connection: ClientConnection) -> Admission {
        // Every request uses the snapshot current when it starts (intentions, Lambda settings).
        let snapshot = store.snapshot
        guard let service = snapshot.services[connection.serviceName] else {
            return .refused(.rejected(.error(status: 503, code: "ServiceNotServed", message: "\(connection.serviceName) is no longer served by this gateway")))
        }
        let (rawPath, query) = Self.split(target: target)
        let path: String
        do {
            path = try PathNormalizer.normalize(rawPath)
        } catch {
            return .refused(.rejected(.error(status: 400, code: "InvalidPath", message: "the request path is not valid")))
        }
        if case .mesh(let caller, _) = connection.caller {
            let authorization = AuthorizationRequest(method: method, path: path, headers: headers.map { ($0.name, $0.value) })
            guard evaluator(for: service, snapshot: snapshot).isAllowed(caller: caller, request: authorization) else {
                return .refused(Answer(response: Self.accessDenied, outcome: .denied))
            }
        }
        return .admitted(Admitted(snapshot: snapshot, service: service, path: path, query: query))
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
            return .answer(.rejected(.error(status: 413, code: "RequestTooLarge", message: "the request body is over the \(limit)-byte limit")))
        }

        let view = HTTPRequestView(
            method: request.method,
            path: admitted.path,
            query: admitted.query,
            headers: forwardedHeaders(request.headers, connection: connection, sanitize: admitted.snapshot.sanitizeXFCC),
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
            return .answer(.rejected(.error(status: 400, code: error.code.rawValue, message: error.message)))
        }
        guard payload.readableBytes <= limit else {
            return .answer(.rejected(.error(status: 413, code: "RequestTooLarge", message: "the Lambda payload would be \(payload.readableBytes) bytes, over the \(limit)-byte limit")))
        }

        let idempotent = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"].contains(request.method)
        let invocation = InvokeRequest(
            function: service.lambda.function,
            payload: payload,
            invocationType: service.lambda.invocationType,
            timeout: service.requestTimeout ?? settings.defaultRequestTimeout,
            mayRetryThrottling: idempotent,
            budget: budget
        )
        return .invoke(Call(invocation: invocation, service: service, method: request.method))
    }

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

    /// The client's headers plus what the gateway adds (mesh-identity.md §9.4, §7). A direct
    /// caller has no certificate: its own `x-forwarded-client-cert` passes unless sanitizing.
    func forwardedHeaders(_ headers: [HTTPField], connection: ClientConnection, sanitize: Bool) -> [HTTPField] {
        var result = headers
        var scheme = "http"
        if case .mesh(_, let element) = connection.caller {
            scheme = "https"
            result = headers.filter { !$0.name.asciiCaseInsensitiveEquals("x-forwarded-client-cert") }
            let incoming = headers.filter { $0.name.asciiCaseInsensitiveEquals("x-forwarded-client-cert") }.map(\.value)
            if incoming.isEmpty && !sanitize {
                result.append(HTTPField("x-forwarded-client-cert", element))
            } else if let value = ForwardedClientCert.headerValue(incoming: incoming.isEmpty ? nil : incoming.joined(separator: ","), element: element.text, sanitize: sanitize) {
                result.append(HTTPField("x-forwarded-client-cert", value))
            }
        } else if sanitize {
            result = headers.filter { !$0.name.asciiCaseInsensitiveEquals("x-forwarded-client-cert") }
        }
        if !headers.contains(where: { $0.name.asciiCaseInsensitiveEquals("x-forwarded-proto") }) {
            result.append(HTTPField("x-forwarded-proto", scheme))
        }
        if !headers.contains(where: { $0.name.asciiCaseInsensitiveEquals("x-request-id") }) {
            result.append(HTTPField("x-request-id", requestIDs.next()))
        }
        return result
    }

    func evaluator(for service: ServedService, snapshot: GatewaySnapshot) -> IntentionEvaluator {
        if let cached = evaluators.withLock({ $0.version == snapshot.version ? $0.byService[service.name] : nil }) {
            return cached
        }
        let compiled = service.authorization(defaultPolicy: snapshot.defaultIntentionPolicy)
        if let problem = compiled.configurationError {
            logger.error("intentions cannot be evaluated; denying every request", metadata: ["service": "\(service.name)", "error": "\(problem)"])
        }
        evaluators.withLock { cache in
            if cache.version != snapshot.version { cache = (snapshot.version, [:]) }
            cache.byService[service.name] = compiled
        }
        return compiled
    }

    /// Origin-form `/p?q` or absolute-form `https://h/p?q` → (path, raw query or nil).
    static func split(target: String) -> (String, String?) {
        // Byte scans (no Foundation string search on the path); an origin-form target starts with `/`.
        var rest = Substring(target).utf8
        if rest.first != UInt8(ascii: "/"), let authority = Self.afterScheme(rest) {
            let afterAuthority = rest[authority...]
            guard let end = afterAuthority.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) else { return ("/", nil) }
            if afterAuthority[end] == UInt8(ascii: "?") {
                return ("/", String(Substring(afterAuthority[afterAuthority.index(after: end)...])))
            }
            rest = afterAuthority[end...]
        }
        guard let question = rest.firstIndex(of: UInt8(ascii: "?")) else { return (String(Substring(rest)), nil) }
        return (String(Substring(rest[..<question])), String(Substring(rest[rest.index(after: question)...])))
    }

    /// Where the authority starts in an absolute-form target (after the first `://`).
    private static func afterScheme(_ target: Substring.UTF8View) -> Substring.UTF8View.Index? {
        var index = target.startIndex
        while let colon = target[index...].firstIndex(of: UInt8(ascii: ":")) {
            let rest = target[colon...]
            if rest.starts(with: "://".utf8) { return target.index(colon, offsetBy: 3) }
            index = target.index(after: colon)
        }
        return nil
    }
}

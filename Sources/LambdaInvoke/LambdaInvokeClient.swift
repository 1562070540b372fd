import AWSCredentials
import AWSSigV4
import Foundation
import LambdaPayload
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// How the client talks to Lambda.
public struct LambdaInvokeConfiguration: Sendable {
    public var endpoints: LambdaEndpointResolver
    /// Extra trust anchors for the endpoint (PEM or DER); the system roots stay trusted.
    public var caFile: String?
    /// The flag that named `caFile`, for errors about it.
    public var caFileSetting: String
    /// Pooled keep-alive HTTP/1.1 connections per endpoint host.
    public var maximumConnectionsPerHost: Int
    public var connectTimeout: Duration
    public var idleTimeout: Duration
    public var maximumSyncPayloadBytes: Int
    public var maximumAsyncPayloadBytes: Int
    /// Lambda's own response limit is 6 MB plus a little framing (AWS Lambda quotas documentation).
    public var maximumResponseBytes: Int
    /// One self-retry on 429 when the caller allows it (docs/DECISIONS.md D14).
    public var retryThrottling: Bool
    /// Streamed answers in progress at once (`invokeStreaming`): each holds a pooled connection for
    /// as long as its caller reads, so they may take at most this many of the
    /// `maximumConnectionsPerHost`; calls over it fail at once with `tooManyStreams` (default: three
    /// quarters of the pool, so that buffered calls always have connections).
    public var maximumConcurrentStreams: Int
    /// Streamed answers one client connection (its `ResponseBudget`) may have in progress at once,
    /// so that one caller cannot take every stream slot (default: a third of
    /// `maximumConcurrentStreams`, at least 1).
    public var maximumStreamsPerConnection: Int
    public var userAgent: String

    public init(
        endpoints: LambdaEndpointResolver = LambdaEndpointResolver(),
        caFile: String? = nil,
        caFileSetting: String = "--lambda-ca-file",
        maximumConnectionsPerHost: Int = 64,
        connectTimeout: Duration = .seconds(5),
        idleTimeout: Duration = .seconds(60),
        maximumSyncPayloadBytes: Int = 6_291_456,
        maximumAsyncPayloadBytes: Int = 1_048_576,
        maximumResponseBytes: Int = 6_291_556,
        retryThrottling: Bool = true,
        maximumConcurrentStreams: Int? = nil,
        maximumStreamsPerConnection: Int? = nil,
        userAgent: String = "lambda-gateway/0.1"
    ) {
        let streams = maximumConcurrentStreams ?? max(1, maximumConnectionsPerHost * 3 / 4)
        self.maximumConcurrentStreams = streams
        self.maximumStreamsPerConnection = maximumStreamsPerConnection ?? max(1, streams / 3)
        self.endpoints = endpoints
        self.caFile = caFile
        self.caFileSetting = caFileSetting
        self.maximumConnectionsPerHost = maximumConnectionsPerHost
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maximumSyncPayloadBytes = maximumSyncPayloadBytes
        self.maximumAsyncPayloadBytes = maximumAsyncPayloadBytes
        self.maximumResponseBytes = maximumResponseBytes
        self.retryThrottling = retryThrottling
        self.userAgent = userAgent
    }
}

/// `RequestResponse` (synchronous) or `Event` (asynchronous, answered 202).
public enum InvocationType: String, Sendable, Hashable {
    case requestResponse = "RequestResponse"
    case event = "Event"
}

/// One Invoke call.
///
/// A value with its fields in one shared box, copied only when a copy is changed (as `Array`
/// does): a call is handed along several times on its way to the socket (the attempt, the pool's
/// wait, the retry a throttled call keeps), and each copy retained and released every reference
/// in its dozen fields.
public struct InvokeRequest: Sendable {
    private var storage: Storage

    public var function: FunctionARN {
        get { storage.function }
        _modify { yield &uniqueStorage().function }
    }

    /// The `FunctionName` path parameter: the full ARN, as the gateway always sends it. The Invoke API
    /// also accepts a plain name in the ARN's region.
    public var functionIdentifier: String {
        get { storage.functionIdentifier }
        _modify { yield &uniqueStorage().functionIdentifier }
    }

    /// A payload set anew clears `payloadHash` (which was the old payload's).
    public var payload: ByteBuffer {
        get { storage.payload }
        _modify {
            let storage = uniqueStorage()
            // Cleared however the change ends: one that throws part-way may still have changed
            // bytes, and a stale hash would sign them wrongly.
            defer { storage.payloadHash = nil }
            yield &storage.payload
        }
    }

    public var invocationType: InvocationType {
        get { storage.invocationType }
        _modify { yield &uniqueStorage().invocationType }
    }

    /// Covers waiting for credentials, the call, and reading the whole answer.
    public var timeout: Duration {
        get { storage.timeout }
        _modify { yield &uniqueStorage().timeout }
    }

    /// Whether a throttled call may be retried once (idempotent methods, async invocations).
    public var mayRetryThrottling: Bool {
        get { storage.mayRetryThrottling }
        _modify { yield &uniqueStorage().mayRetryThrottling }
    }

    /// The answer bytes of the client connection this call answers: the answer is read only when
    /// it fits (see `ResponseBudget`).
    public var budget: ResponseBudget? {
        get { storage.budget }
        _modify { yield &uniqueStorage().budget }
    }

    /// `X-Amzn-Trace-Id` for the call: the caller's trace, so that the function's X-Ray segment
    /// joins it. Sent unsigned, as the AWS SDKs send it (botocore leaves it out of SigV4).
    public var traceHeader: String? {
        get { storage.traceHeader }
        _modify { yield &uniqueStorage().traceHeader }
    }

    /// The payload's SHA-256 in hex, when the caller hashed it already (off the event loop, for a
    /// large payload); otherwise signing hashes it.
    public var payloadHash: String? {
        get { storage.payloadHash }
        _modify { yield &uniqueStorage().payloadHash }
    }

    /// A hash state over bytes that the payload may open with (a mesh connection's
    /// `x-forwarded-client-cert` lead, `RequestEncoder.lead`): signing then hashes only what
    /// follows them. Checked against the payload's bytes, so a payload that does not open with them
    /// is hashed whole.
    public var payloadPrefix: SHA256Prefix? {
        get { storage.payloadPrefix }
        _modify { yield &uniqueStorage().payloadPrefix }
    }

    /// Set by `invokeStreaming`: the call is `InvokeWithResponseStream`, and a 200's body goes here.
    var stream: UpstreamStreamSink? {
        get { storage.stream }
        _modify { yield &uniqueStorage().stream }
    }

    /// Requests already sent for this call (a throttled one before its retry).
    var priorAttempts: Int {
        get { storage.priorAttempts }
        _modify { yield &uniqueStorage().priorAttempts }
    }

    public init(
        function: FunctionARN,
        payload: ByteBuffer,
        invocationType: InvocationType = .requestResponse,
        timeout: Duration = .seconds(15),
        mayRetryThrottling: Bool = false,
        budget: ResponseBudget? = nil,
        traceHeader: String? = nil,
        payloadPrefix: SHA256Prefix? = nil
    ) {
        storage = Storage(
            function: function, functionIdentifier: function.description, payload: payload, invocationType: invocationType, timeout: timeout,
            mayRetryThrottling: mayRetryThrottling || invocationType == .event, budget: budget, traceHeader: traceHeader, payloadPrefix: payloadPrefix)
    }

    /// The box, copied first if another request shares it.
    private mutating func uniqueStorage() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = Storage(copying: storage) }
        return storage
    }

    /// Changed only through a request that holds it alone (`uniqueStorage`), so no two threads
    /// ever change one, nor read one that is changing.
    private final class Storage: @unchecked Sendable {
        var function: FunctionARN
        var functionIdentifier: String
        var payload: ByteBuffer
        var invocationType: InvocationType
        var timeout: Duration
        var mayRetryThrottling: Bool
        var budget: ResponseBudget?
        var traceHeader: String?
        var payloadHash: String? = nil
        var payloadPrefix: SHA256Prefix?
        var stream: UpstreamStreamSink? = nil
        var priorAttempts: Int = 0

        init(
            function: FunctionARN, functionIdentifier: String, payload: ByteBuffer, invocationType: InvocationType, timeout: Duration, mayRetryThrottling: Bool,
            budget: ResponseBudget?, traceHeader: String?, payloadPrefix: SHA256Prefix?
        ) {
            self.function = function
            self.functionIdentifier = functionIdentifier
            self.payload = payload
            self.invocationType = invocationType
            self.timeout = timeout
            self.mayRetryThrottling = mayRetryThrottling
            self.budget = budget
            self.traceHeader = traceHeader
            self.payloadPrefix = payloadPrefix
        }

        init(copying other: Storage) {
            function = other.function
            functionIdentifier = other.functionIdentifier
            payload = other.payload
            invocationType = other.invocationType
            timeout = other.timeout
            mayRetryThrottling = other.mayRetryThrottling
            budget = other.budget
            traceHeader = other.traceHeader
            payloadHash = other.payloadHash
            payloadPrefix = other.payloadPrefix
            stream = other.stream
            priorAttempts = other.priorAttempts
        }
    }
}

/// Signs and sends Lambda Invoke calls over a shared pool of keep-alive HTTPS connections.
///
/// The upstream request is built from scratch (docs/DECISIONS.md D2): no client header ever reaches AWS.
public final class LambdaInvokeClient: Sendable {
    public let configuration: LambdaInvokeConfiguration
    let pools: UpstreamPools
    let credentials: any CredentialSource
    let keyCache = SigningKeyCache()
    let templates = InvokeTemplates()
    /// Streamed answers in progress (`maximumConcurrentStreams`).
    let activeStreams = Atomic<Int>(0)
    let logger: Logger
    let now: @Sendable () -> Date
    /// Where `invoke(_:)` answers when its caller is on no event loop.
    let eventLoopGroup: any EventLoopGroup
    /// Attempts of one call when the endpoint keeps closing pooled connections as requests go out.
    static let staleConnectionAttempts = 3

    public init(
        configuration: LambdaInvokeConfiguration,
        credentials: any CredentialSource,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init
    ) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["http/1.1"]
        (tls.trustRoots, tls.additionalTrustRoots) = try TrustRoots.make(caFile: configuration.caFile, setting: configuration.caFileSetting)
        self.pools = UpstreamPools(
            group: eventLoopGroup,
            tlsContext: try NIOSSLContext(configuration: tls),
            limit: configuration.maximumConnectionsPerHost,
            connectTimeout: TimeAmount(configuration.connectTimeout),
            idleTimeout: TimeAmount(configuration.idleTimeout)
        )
        self.configuration = configuration
        self.credentials = credentials
        self.logger = logger
        self.now = now
        self.eventLoopGroup = eventLoopGroup
    }

    public func shutdown() async throws {
        await pools.shutdown()
    }

    /// Each event loop's batch of flushes at the end of its round, which the Invoke requests use:
    /// the gateway's client connections flush their answers through the same batches.
    public var flushes: FlushBatches { pools.flushes }

    /// The connections to Lambda now, and the TLS handshakes made so far (`/metrics`).
    public var poolStatistics: UpstreamPoolStatistics { pools.statistics }

    /// Invokes the function. Lambda's 200/202 answers (function errors included) are results;
    /// everything else is a `LambdaInvokeError`.
    public func invoke(_ request: InvokeRequest) async throws(LambdaInvokeError) -> LambdaInvocationResult {
        let loop = eventLoopGroup.any()
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            invoke(request, on: loop) { continuation.resume(returning: $0) }
        }
        return try outcome.get()
    }

    public typealias Outcome = Result<LambdaInvocationResult, LambdaInvokeError>

    /// `invoke`, for a caller on `eventLoop` (the gateway's request path), whose `completion` runs
    /// there. When credentials are at hand and a pooled connection is idle, as under load, the call
    /// from signing to Lambda's answer is callbacks only: no task, no future but the request
    /// write's. Waiting for credentials, for a new or busy connection, or before a retry goes on in
    /// a task or a timer.
    public func invoke(_ request: InvokeRequest, on eventLoop: any EventLoop, completion: @escaping @Sendable (Outcome) -> Void) {
        let endpoint: LambdaEndpointResolver.Endpoint
        do {
            endpoint = try preflight(request)
        } catch {
            completion(.failure(error))
            return
        }
        let deadline = ContinuousClock.now + request.timeout
        send(request, to: endpoint, deadline: deadline, on: eventLoop) { outcome in
            guard case .failure(let error) = outcome, error.isThrottling, let delay = self.retryDelay(for: error, request: request, deadline: deadline) else {
                completion(outcome)
                return
            }
            self.logger.debug(
                "throttled by Lambda; retrying once",
                metadata: ["function": "\(request.function)", "delay_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)"])
            var retry = request
            retry.priorAttempts = error.attempts
            let again = retry
            eventLoop.scheduleTask(in: TimeAmount(delay)) {
                self.send(again, to: endpoint, deadline: deadline, on: eventLoop) { retried in
                    var outcome = Self.adding(attempts: error.attempts, to: retried)
                    if case .failure(var again) = outcome {
                        again.failedAfterThrottlingRetry = true
                        outcome = .failure(again)
                    }
                    completion(outcome)
                }
            }
        }
    }

    /// `outcome` after `attempts` earlier requests for the same call.
    static func adding(attempts: Int, to outcome: Outcome) -> Outcome {
        switch outcome {
        case .success(var result):
            result.attempts += attempts
            return .success(result)
        case .failure(var error):
            error.attempts += attempts
            return .failure(error)
        }
    }

    /// The payload within Lambda's limit and the endpoint for the function's region, or why not.
    func preflight(_ request: InvokeRequest) throws(LambdaInvokeError) -> LambdaEndpointResolver.Endpoint {
        let limit = request.invocationType == .event ? configuration.maximumAsyncPayloadBytes : configuration.maximumSyncPayloadBytes
        guard request.payload.readableBytes <= limit else {
            throw LambdaInvokeError(.payloadTooLarge(limit: limit), "payload of \(request.payload.readableBytes) bytes is over the \(limit)-byte limit")
        }
        do {
            return try configuration.endpoints.endpoint(for: request.function)
        } catch {
            throw LambdaInvokeError(.invalidTarget, error.message)
        }
    }

    /// The Invoke call's URL and headers, signed with `identity` now. Built from scratch: no client
    /// header ever reaches AWS.
    func signedRequest(_ request: InvokeRequest, to endpoint: LambdaEndpointResolver.Endpoint, identity: Credentials) -> (path: String, fields: [(StaticString, String)]) {
        let prepared = templates.template(function: request.functionIdentifier, endpoint: endpoint, streaming: request.stream != nil, keyCache: keyCache)
        let signature: SigV4Signature
        if let hash = request.payloadHash {
            signature = prepared.signer.sign(prepared.template, values: [request.invocationType.rawValue], payloadHash: hash, credentials: identity, date: now())
        } else {
            signature = request.payload.withUnsafeReadableBytes { payload in
                prepared.signer.sign(prepared.template, value: request.invocationType.rawValue, payload: payload, prefix: request.payloadPrefix, credentials: identity, date: now())
            }
        }
        // A list, written as it is (`UpstreamRequestEncoder`): no `HTTPHeaders`, whose `add` checks
        // each name for non-ASCII bytes, and these names are the gateway's own. Values that come
        // from elsewhere (the token, the trace) are checked for framing bytes as they are written.
        var fields: [(StaticString, String)] = []
        fields.reserveCapacity(9)
        fields.append(("Host", endpoint.host))
        fields.append(("Content-Type", "application/json"))
        fields.append(("X-Amz-Invocation-Type", request.invocationType.rawValue))
        fields.append(("X-Amz-Date", signature.amzDate))
        if let token = signature.sessionToken {
            fields.append(("X-Amz-Security-Token", token))
        }
        fields.append(("Authorization", signature.authorization))
        fields.append(("User-Agent", configuration.userAgent))
        if let trace = request.traceHeader {
            fields.append(("X-Amzn-Trace-Id", trace))
        }
        fields.append(("Content-Length", String(request.payload.readableBytes)))
        return (prepared.path, fields)
    }

    /// Retry-After (absent: a random 100–300 ms) when it is at most 2 s and fits before the deadline.
    func retryDelay(for error: LambdaInvokeError, request: InvokeRequest, deadline: ContinuousClock.Instant) -> Duration? {
        guard configuration.retryThrottling, request.mayRetryThrottling else { return nil }
        let delay: Duration = error.retryAfter.map { .seconds($0) } ?? .milliseconds(Int.random(in: 100...300))
        guard delay <= .seconds(2), ContinuousClock.now + delay < deadline else { return nil }
        return delay
    }

    /// Credentials (at hand, or awaited in a task up to 5 s), then `attempt`.
    private func send(
        _ request: InvokeRequest,
        to endpoint: LambdaEndpointResolver.Endpoint,
        deadline: ContinuousClock.Instant,
        on eventLoop: any EventLoop,
        completion: @escaping @Sendable (Outcome) -> Void
    ) {
        if let identity = credentials.usableCredentials() {
            send(request, to: endpoint, identity: identity, deadline: deadline, on: eventLoop, completion: completion)
            return
        }
        let credentialWait = max(min(.seconds(5), deadline - ContinuousClock.now), .zero)
        Task {
            let identity: Credentials
            do throws(CredentialsError) {
                identity = try await self.credentials.credentials(timeout: credentialWait)
            } catch {
                eventLoop.execute { completion(.failure(LambdaInvokeError(.noCredentials, error.message))) }
                return
            }
            eventLoop.execute { self.send(request, to: endpoint, identity: identity, deadline: deadline, on: eventLoop, completion: completion) }
        }
    }

    /// Signs the call once and sends it, on a new connection again while pooled ones turn out closed.
    private func send(
        _ request: InvokeRequest,
        to endpoint: LambdaEndpointResolver.Endpoint,
        identity: Credentials,
        deadline: ContinuousClock.Instant,
        on eventLoop: any EventLoop,
        completion: @escaping @Sendable (Outcome) -> Void
    ) {
        let signed = signedRequest(request, to: endpoint, identity: identity)
        let upstream = UpstreamRequestEncoder.encode(method: .POST, target: signed.path, fields: signed.fields, body: request.payload)
        let pool: UpstreamPool
        do {
            pool = try pools.pool(for: endpoint.baseURL)
        } catch {
            completion(.failure(classify(error, endpoint: UpstreamTarget(baseURL: endpoint.baseURL), timeout: request.timeout)))
            return
        }
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else {
            completion(.failure(LambdaInvokeError(.timeout, "the request deadline passed before the call")))
            return
        }
        let call = Attempted(stream: request.stream, priorAttempts: request.priorAttempts, budget: request.budget, timeout: request.timeout)
        attempt(upstream, of: call, pool: pool, deadline: NIODeadline.now() + TimeAmount(remaining), number: 1, on: eventLoop, completion: completion)
    }

    /// What an attempt needs of its call: the call itself (some 270 bytes, a dozen references) is
    /// not captured by the attempt's completion.
    private struct Attempted: Sendable {
        var stream: UpstreamStreamSink?
        var priorAttempts: Int
        var budget: ResponseBudget?
        var timeout: Duration
    }

    private func attempt(
        _ upstream: UpstreamRequest,
        of request: Attempted,
        pool: UpstreamPool,
        deadline: NIODeadline,
        number: Int,
        on eventLoop: any EventLoop,
        completion: @escaping @Sendable (Outcome) -> Void
    ) {
        var stream = request.stream
        stream?.attempts = request.priorAttempts + number
        pool.execute(upstream, deadline: deadline, maximumResponseBytes: configuration.maximumResponseBytes, budget: request.budget, stream: stream, on: eventLoop) { outcome in
            switch outcome {
            case .success(let response):
                do throws(LambdaInvokeError) {
                    var answer = try self.result(status: response.status, headers: response.headers, body: response.body)
                    answer.heldBytes = response.heldBytes
                    answer.attempts = number
                    answer.upstreamLocalAddress = response.localAddress
                    completion(.success(answer))
                } catch {
                    // An AWS error answer is no client answer: what it held goes back now.
                    if response.heldBytes > 0 { request.budget?.release(response.heldBytes) }
                    var error = error
                    error.attempts = number
                    error.upstreamLocalAddress = response.localAddress
                    completion(.failure(error))
                }
            case .failure(.staleConnection) where number < Self.staleConnectionAttempts:
                self.attempt(upstream, of: request, pool: pool, deadline: deadline, number: number + 1, on: eventLoop, completion: completion)
            case .failure(let failure):
                var error = self.classify(failure, endpoint: pool.target, timeout: request.timeout)
                error.attempts = number
                completion(.failure(error))
            }
        }
    }

    /// Turns Lambda's answer into a result, or into the AWS error it carries.
    func result(status: Int, headers: UpstreamHeaders, body: ByteBuffer) throws(LambdaInvokeError) -> LambdaInvocationResult {
        let requestID = headers.first(name: "x-amzn-RequestId")
        if status == 200 || status == 202 || status == 204 {
            return LambdaInvocationResult(
                statusCode: status,
                functionError: headers.first(name: "X-Amz-Function-Error"),
                requestID: requestID,
                payload: body
            )
        }
        let error = AWSErrorBody.parse(status: status, headers: headers.httpHeaders, body: body)
        let invokeError = LambdaInvokeError(.aws(status: status, errorCode: error.code), error.message, retryAfter: headers.first(name: "Retry-After").flatMap { Int($0) })
        if invokeError.isAuthenticationFailure {
            credentials.authenticationFailed()
        }
        throw invokeError
    }

    func classify(_ failure: UpstreamFailure, endpoint: UpstreamTarget, timeout: Duration) -> LambdaInvokeError {
        switch failure {
        case .connect(let error) where Self.isHandshakeFailure(error), .closedBeforeResponse(let error?, _) where Self.isHandshakeFailure(error):
            return LambdaInvokeError(.endpointUnreachable, "TLS with the Lambda endpoint \(endpoint) failed: \(error)")
        case .connect(let error):
            return LambdaInvokeError(.endpointUnreachable, "cannot connect to the Lambda endpoint \(endpoint): \(error)")
        case .closedBeforeResponse(let cause, requestWritten: true):
            return LambdaInvokeError(
                .connectionLost, "Lambda closed the connection after the request was sent and before answering; not sent again, since the function may have run" + Self.because(cause))
        case .closedBeforeResponse(let cause, requestWritten: false), .staleConnection(let cause):
            return LambdaInvokeError(.connectionLost, "Lambda closed the connection before the request was sent" + Self.because(cause))
        case .closedMidResponse(let cause):
            return LambdaInvokeError(.connectionLost, "Lambda closed the connection before the answer was complete" + Self.because(cause))
        case .timedOut:
            return LambdaInvokeError(.timeout, "no complete answer from Lambda within \(timeout)")
        case .responseTooLarge(let limit):
            return LambdaInvokeError(.responseTooLarge(limit: limit), "Lambda's answer is over \(limit) bytes")
        case .malformedResponse(let problem):
            return LambdaInvokeError(.connectionLost, "malformed answer from Lambda: \(problem)")
        case .shutDown:
            return LambdaInvokeError(.endpointUnreachable, "the gateway is shutting down")
        case .abandoned:
            return LambdaInvokeError(.connectionLost, "the client connection closed while Lambda's answer waited for it")
        }
    }

    /// The TLS handshake failed (certificate not trusted, wrong name, no common protocol): the
    /// request never left.
    static func isHandshakeFailure(_ error: any Error) -> Bool {
        if error is NIOSSLExtraError { return true }
        if let error = error as? NIOSSLError, case .handshakeFailed = error { return true }
        return false
    }

    static func because(_ cause: (any Error)?) -> String {
        cause.map { ": \($0)" } ?? ""
    }
}

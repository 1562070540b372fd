import AWSCredentials
import AWSSigV4
import LambdaInvoke
import NIOCore
import NIOHTTP1

/// One call as an operation describes it, before signing.
struct AWSRequest: Sendable {
    var operation: String
    var method: HTTPMethod
    /// The path exactly as sent: segments already percent-encoded (`arn%3Aaws%3A...`).
    var path: String
    /// The query exactly as sent, without `?`: names and values percent-encoded.
    var query: String = ""
    /// Headers to sign besides `host` (`content-type`, `x-amz-target`).
    var headers: [(name: String, value: String)] = []
    var body = ByteBuffer()
    /// A read: sending it twice changes nothing, so a connection lost after sending is retried too.
    var idempotent = false
}

/// A 2xx answer.
struct AWSAnswer: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: ByteBuffer
}

extension AWSAPIClient {
    /// An attempt's error, and what it means for retrying.
    struct AttemptFailure: Error {
        var error: AWSAPIError
        var retry: AWSRetryPolicy.Failure
    }

    /// Sends `request` until it succeeds, fails for good, runs out of attempts or of `callTimeout`.
    func send(_ request: AWSRequest, to service: AWSService) async throws(AWSAPIError) -> AWSAnswer {
        let deadline = ContinuousClock.now + configuration.callTimeout
        var attempt = 1
        while true {
            let failure: AttemptFailure
            do {
                return try await sendOnce(request, to: service, deadline: deadline)
            } catch {
                failure = error
            }
            let decision = retryPolicy.decide(failure.retry, attempt: attempt, remaining: deadline - ContinuousClock.now, random: Double.random(in: 0..<1))
            guard case .retry(let delay) = decision, !Task.isCancelled else { throw failure.error }
            logger.debug(
                "AWS call failed; retrying",
                metadata: ["operation": "\(request.operation)", "attempt": "\(attempt)", "delay": "\(delay)", "error": "\(failure.error)"]
            )
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw failure.error
            }
            attempt += 1
        }
    }

    private func sendOnce(_ request: AWSRequest, to service: AWSService, deadline: ContinuousClock.Instant) async throws(AttemptFailure) -> AWSAnswer {
        let identity: Credentials
        do {
            identity = try await credentials.credentials(timeout: max(.zero, min(.seconds(5), deadline - .now)))
        } catch {
            throw AttemptFailure(error: AWSAPIError(.noCredentials, "\(request.operation): \(error.message)"), retry: .permanent)
        }
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else {
            throw AttemptFailure(error: AWSAPIError(.transport, "\(request.operation): no answer from \(service.name) within \(configuration.callTimeout)"), retry: .permanent)
        }
        let headers = signedHeaders(request, for: service, identity: identity)
        let target = request.query.isEmpty ? request.path : "\(request.path)?\(request.query)"
        countRequest(request.operation)
        let response: (status: Int, headers: HTTPHeaders, body: ByteBuffer)
        do {
            response = try await http.execute(
                method: request.method,
                baseURL: service.endpoint.baseURL,
                target: target,
                headers: headers,
                body: request.body,
                deadline: .now() + TimeAmount(remaining),
                maximumResponseBytes: Self.maximumResponseBytes
            )
        } catch {
            throw Self.classify(error, operation: request.operation, idempotent: request.idempotent)
        }
        if (200..<300).contains(response.status) {
            return AWSAnswer(status: response.status, headers: response.headers, body: response.body)
        }
        let failure = Self.classify(status: response.status, headers: response.headers, body: response.body, operation: request.operation, service: service.name)
        if failure.error.isAuthenticationFailure {
            // The source refreshes (at most once a minute); the next call signs with what it gets.
            credentials.authenticationFailed()
        }
        throw failure
    }

    /// The request's headers with SigV4's, signed at `now()`. Header signing as botocore does it:
    /// every header sent except `user-agent` and `content-length` is signed; the canonical path is
    /// the sent path encoded once more (the signer's default for every service but S3).
    func signedHeaders(_ request: AWSRequest, for service: AWSService, identity: Credentials) -> HTTPHeaders {
        let payloadHash = request.body.withUnsafeReadableBytes { SigV4Signer.payloadHash($0) }
        var signed = [SigV4Header("host", service.endpoint.host)]
        for header in request.headers { signed.append(SigV4Header(header.name, header.value)) }
        let signature = service.signer.sign(
            SigV4Request(method: request.method.rawValue, path: request.path, query: request.query, headers: signed, payloadHash: payloadHash),
            credentials: identity,
            date: now()
        )
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: service.endpoint.host)
        for header in request.headers { headers.add(name: header.name, value: header.value) }
        for header in signature.headersToAdd { headers.add(name: header.name, value: header.value) }
        headers.add(name: "User-Agent", value: configuration.userAgent)
        return headers
    }

    /// An AWS error answer: its code, and whether the AWS SDKs would try again.
    static func classify(status: Int, headers: HTTPHeaders, body: ByteBuffer, operation: String, service: String) -> AttemptFailure {
        let answer = AWSErrorBody.parse(status: status, headers: headers, body: body, service: service)
        let error = AWSAPIError(.aws(status: status, code: answer.code), "\(operation): \(answer.message)")
        // Retry-After in seconds (the only form AWS sends); a date form is ignored.
        let retryAfter = headers.first(name: "Retry-After").flatMap { Int($0) }.map { Duration.seconds(max($0, 0)) }
        if error.isThrottling { return AttemptFailure(error: error, retry: .throttling(retryAfter: retryAfter)) }
        if status >= 500 || AWSAPIError.transientCodes.contains(answer.code) {
            return AttemptFailure(error: error, retry: .transient(retryAfter: retryAfter))
        }
        return AttemptFailure(error: error, retry: .permanent)
    }

    /// A transport failure: tried again when the request certainly never reached AWS, or is a read; a
    /// write (PutParameter, DeleteParameter) that may have been applied is not sent again behind the
    /// caller's back. A refused certificate stays refused: not retried.
    static func classify(_ error: PooledHTTPError, operation: String, idempotent: Bool) -> AttemptFailure {
        switch error.code {
        case .invalidURL:
            return AttemptFailure(error: AWSAPIError(.invalidRequest, "\(operation): \(error.message)"), retry: .permanent)
        case .responseTooLarge, .malformedResponse:
            return AttemptFailure(error: AWSAPIError(.malformedResponse, "\(operation): \(error.message)"), retry: .permanent)
        case .shutDown, .tls:
            return AttemptFailure(error: AWSAPIError(.transport, "\(operation): \(error.message)"), retry: .permanent)
        case .connect, .connectionLost, .timedOut:
            let retry: AWSRetryPolicy.Failure = error.requestNotSent || idempotent ? .transient(retryAfter: nil) : .permanent
            return AttemptFailure(error: AWSAPIError(.transport, "\(operation): \(error.message)"), retry: retry)
        }
    }
}

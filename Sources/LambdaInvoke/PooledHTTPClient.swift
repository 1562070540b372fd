import NIOCore
import NIOHTTP1
import NIOSSL

/// Why a `PooledHTTPClient` exchange failed, and whether the server can have acted on the request.
public struct PooledHTTPError: Error, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// TCP connect (or name resolution) failed or timed out.
        case connect
        /// The TLS handshake failed (certificate not trusted, wrong name, no common protocol).
        case tls
        /// The connection closed or failed before the whole answer arrived.
        case connectionLost
        /// The deadline passed: waiting for a connection, or for the answer.
        case timedOut
        /// The answer is longer than `maximumResponseBytes`.
        case responseTooLarge(limit: Int)
        /// The answer is not HTTP/1.1 the decoder accepts.
        case malformedResponse
        /// The base URL is not `http(s)://host[:port]`.
        case invalidURL
        /// The client is shutting down.
        case shutDown
    }

    public var code: Code
    public var message: String
    /// No complete request reached the server (connect or TLS failure, pooled connections found
    /// closed, the connection lost before the request was fully written, shut down): the server
    /// cannot have acted on it, so sending it again cannot do anything twice.
    public var requestNotSent: Bool

    public init(_ code: Code, _ message: String, requestNotSent: Bool) {
        self.code = code
        self.message = message
        self.requestNotSent = requestNotSent
    }

    public var description: String { message }
}

/// The Invoke client's pooled keep-alive HTTP/1.1 connections, for other AWS calls: one pool per
/// base URL, one TLS context with the same trust roots, whole answers, no streaming.
///
/// The caller builds every header (`Host` included, since it is signed); `Content-Length` is added
/// when missing.
public final class PooledHTTPClient: Sendable {
    let pools: UpstreamPools
    /// Tries of one request while the endpoint keeps closing pooled connections as it goes out (as
    /// `LambdaInvokeClient` does): such a request never reached the server.
    static let staleConnectionAttempts = 3

    /// `caFile`: extra trust anchors (PEM or DER) beside the system roots; errors name `caFileSetting`.
    public init(
        caFile: String?,
        caFileSetting: String,
        eventLoopGroup: any EventLoopGroup,
        maximumConnectionsPerHost: Int,
        connectTimeout: Duration = .seconds(5),
        idleTimeout: Duration = .seconds(60)
    ) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["http/1.1"]
        (tls.trustRoots, tls.additionalTrustRoots) = try TrustRoots.make(caFile: caFile, setting: caFileSetting)
        pools = UpstreamPools(
            group: eventLoopGroup,
            tlsContext: try NIOSSLContext(configuration: tls),
            limit: maximumConnectionsPerHost,
            connectTimeout: TimeAmount(connectTimeout),
            idleTimeout: TimeAmount(idleTimeout)
        )
    }

    /// Sends one request to `baseURL` (`https://host[:port]`, or `http://host:port`) and returns the
    /// whole answer, whatever its status. `target` is the path and query exactly as sent.
    public func execute(
        method: HTTPMethod,
        baseURL: String,
        target: String,
        headers: HTTPHeaders,
        body: ByteBuffer,
        deadline: NIODeadline,
        maximumResponseBytes: Int
    ) async throws(PooledHTTPError) -> (status: Int, headers: HTTPHeaders, body: ByteBuffer) {
        guard Self.isBaseURL(baseURL) else {
            throw PooledHTTPError(.invalidURL, "base URL \"\(baseURL)\" is not http(s)://host[:port]", requestNotSent: true)
        }
        var headers = headers
        if !headers.contains(name: "content-length"), body.readableBytes > 0 || (method != .GET && method != .HEAD) {
            headers.add(name: "Content-Length", value: String(body.readableBytes))
        }
        let request = UpstreamRequestEncoder.encode(method: method, target: target, fields: headers.map { ($0.name, $0.value) }, body: body)
        let pool: UpstreamPool
        do {
            pool = try pools.pool(for: baseURL)
        } catch {
            throw Self.classify(error, endpoint: UpstreamTarget(baseURL: baseURL))
        }
        var attempt = 1
        while true {
            do {
                let response = try await pool.execute(request, deadline: deadline, maximumResponseBytes: maximumResponseBytes)
                return (response.status, response.headers.httpHeaders, response.body)
            } catch {
                if case .staleConnection = error, attempt < Self.staleConnectionAttempts {
                    attempt += 1
                    continue
                }
                throw Self.classify(error, endpoint: pool.target)
            }
        }
    }

    /// Fails waiting requests and closes every connection.
    public func shutdown() async {
        await pools.shutdown()
    }

    /// `http(s)://` and an authority with nothing after it: the pools key on it and parse it as such.
    static func isBaseURL(_ url: String) -> Bool {
        let authority: Substring
        if url.hasPrefix("https://") {
            authority = url.dropFirst(8)
        } else if url.hasPrefix("http://") {
            authority = url.dropFirst(7)
        } else {
            return false
        }
        return !authority.isEmpty && !authority.contains(where: { "/?#@ ".contains($0) })
    }

    static func classify(_ failure: UpstreamFailure, endpoint: UpstreamTarget) -> PooledHTTPError {
        let because = LambdaInvokeClient.because
        switch failure {
        case .connect(let error) where LambdaInvokeClient.isHandshakeFailure(error),
            .closedBeforeResponse(let error?, false) where LambdaInvokeClient.isHandshakeFailure(error):
            return PooledHTTPError(.tls, "TLS with \(endpoint) failed: \(error)", requestNotSent: true)
        case .connect(let error):
            return PooledHTTPError(.connect, "cannot connect to \(endpoint): \(error)", requestNotSent: true)
        case .closedBeforeResponse(let cause, requestWritten: false), .staleConnection(let cause):
            return PooledHTTPError(.connectionLost, "\(endpoint) closed the connection before the request was sent" + because(cause), requestNotSent: true)
        case .closedBeforeResponse(let cause, requestWritten: true):
            return PooledHTTPError(.connectionLost, "\(endpoint) closed the connection after the request was sent and before answering" + because(cause), requestNotSent: false)
        case .closedMidResponse(let cause):
            return PooledHTTPError(.connectionLost, "\(endpoint) closed the connection before the answer was complete" + because(cause), requestNotSent: false)
        case .timedOut:
            return PooledHTTPError(.timedOut, "no complete answer from \(endpoint) before the deadline", requestNotSent: false)
        case .responseTooLarge(let limit):
            return PooledHTTPError(.responseTooLarge(limit: limit), "the answer from \(endpoint) is over \(limit) bytes", requestNotSent: false)
        case .malformedResponse(let problem):
            return PooledHTTPError(.malformedResponse, "malformed answer from \(endpoint): \(problem)", requestNotSent: false)
        case .shutDown:
            return PooledHTTPError(.shutDown, "the HTTP client is shutting down", requestNotSent: true)
        case .abandoned:
            // Only with a `ResponseBudget`, which this client never passes.
            return PooledHTTPError(.connectionLost, "the answer from \(endpoint) was abandoned", requestNotSent: false)
        }
    }
}

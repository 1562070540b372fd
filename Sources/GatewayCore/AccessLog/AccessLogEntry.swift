import LambdaPayload

/// What one access-log line is made of: everything Consul's operators (docs/COMPATIBILITY.md, `AccessLogs`) can
/// ask about one request, or about a connection refused before any request (a listener log).
///
/// The request path fills it once, after the response's last byte is written; the access log's
/// writer renders it off the event loops with the format compiled for the snapshot in effect.
/// A value the gateway does not know stays nil: `-` in a text line, `null` in JSON.
public struct AccessLogEntry: Sendable {
    /// Wall-clock time of the request's first byte (for a listener log: of the connection's accept).
    public var startTime: WallClockTime
    /// First byte of the request to last byte of the response (`%DURATION%`).
    public var duration: Duration?
    /// First byte of the request to first byte of the response (`%RESPONSE_DURATION%`).
    public var responseDuration: Duration?
    /// The Invoke call alone (`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%`, in milliseconds).
    public var upstreamServiceTime: Duration?

    public var method: String?
    /// The request target as received (`%REQ(:PATH)%`).
    public var path: String?
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2` (`%PROTOCOL%`).
    public var protocolName: String?
    /// The request's header fields as received; `%REQ(X)%` finds `X` case-insensitively. The pseudo
    /// headers `:METHOD`, `:PATH` come from `method` and `path`; `:AUTHORITY` is `:authority` or `host`.
    public var requestHeaders: [HTTPField]
    /// The response's header fields as sent (`%RESP(X)%`).
    public var responseHeaders: [HTTPField]

    /// The status sent, 0 when none was (`%RESPONSE_CODE%`).
    public var responseCode: Int
    public var responseFlags: ResponseFlags
    /// Why the response is what it is (`%RESPONSE_CODE_DETAILS%`): `ResponseCodeDetails`' values.
    public var responseCodeDetails: String?
    /// Why the gateway closed the connection, when it did (`%CONNECTION_TERMINATION_DETAILS%`).
    public var connectionTerminationDetails: String?
    /// Request body bytes received (`%BYTES_RECEIVED%`).
    public var bytesReceived: Int
    /// Response body bytes sent (`%BYTES_SENT%`).
    public var bytesSent: Int

    /// The Lambda endpoint called, `host:port` (`%UPSTREAM_HOST%`).
    public var upstreamHost: String?
    /// The linked service's name (`%UPSTREAM_CLUSTER%`).
    public var upstreamCluster: String?
    /// The local address of the connection to Lambda the answer came on (`%UPSTREAM_LOCAL_ADDRESS%`).
    public var upstreamLocalAddress: String?
    public var upstreamTransportFailureReason: String?
    /// Invoke attempts made, retries included (`%UPSTREAM_REQUEST_ATTEMPT_COUNT%`).
    public var upstreamRequestAttemptCount: Int?
    /// The caller's trace id (`%TRACE_ID%`), from `traceparent`, B3 or `X-Amzn-Trace-Id` (`TraceContext`).
    public var traceID: String?
    /// Envoy's route name (`%ROUTE_NAME%`): the gateway has no routes, so nil unless set.
    public var routeName: String?

    /// What is known of the client connection, shared by its requests.
    public var connection: AccessLogConnection

    public init(startTime: WallClockTime, connection: AccessLogConnection) {
        self.startTime = startTime
        self.requestHeaders = []
        self.responseHeaders = []
        self.responseCode = 0
        self.responseFlags = []
        self.bytesReceived = 0
        self.bytesSent = 0
        self.connection = connection
    }
}

/// The client connection's side of an access-log line, made once per connection.
public struct AccessLogConnection: Sendable {
    /// `ip:port` the client connected to (`%DOWNSTREAM_LOCAL_ADDRESS%`).
    public var localAddress: String?
    /// `ip:port` the client connected from (`%DOWNSTREAM_REMOTE_ADDRESS%`).
    public var remoteAddress: String?
    /// The TLS SNI the client sent (`%REQUESTED_SERVER_NAME%`).
    public var requestedServerName: String?
    /// The caller's SPIFFE ID from its certificate's URI SAN (`%DOWNSTREAM_PEER_URI_SAN%`).
    public var peerURISAN: String?
    /// The caller certificate's subject, RFC 2253 style (`%DOWNSTREAM_PEER_SUBJECT%`).
    public var peerSubject: String?
    /// `TLSv1.2` or `TLSv1.3` (`%DOWNSTREAM_TLS_VERSION%`).
    public var tlsVersion: String?

    public init(localAddress: String? = nil, remoteAddress: String? = nil, requestedServerName: String? = nil, peerURISAN: String? = nil, peerSubject: String? = nil, tlsVersion: String? = nil) {
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.requestedServerName = requestedServerName
        self.peerURISAN = peerURISAN
        self.peerSubject = peerSubject
        self.tlsVersion = tlsVersion
    }
}

/// A point in wall-clock time: nanoseconds since the Unix epoch, UTC.
public struct WallClockTime: Sendable, Hashable {
    public var nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) {
        self.nanosecondsSinceEpoch = nanosecondsSinceEpoch
    }
}

/// Envoy's response flags (`%RESPONSE_FLAGS%`), those the gateway can set.
public struct ResponseFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// `UT`: the Invoke call timed out.
    public static let upstreamRequestTimeout = ResponseFlags(rawValue: 1 << 0)
    /// `UF`: no connection to Lambda could be made.
    public static let upstreamConnectionFailure = ResponseFlags(rawValue: 1 << 1)
    /// `UC`: the connection to Lambda ended before its answer did.
    public static let upstreamConnectionTermination = ResponseFlags(rawValue: 1 << 2)
    /// `URX`: retries exhausted.
    public static let upstreamRetryLimitExceeded = ResponseFlags(rawValue: 1 << 3)
    /// `NR`: no route: unknown or missing SNI, or a service no longer served.
    public static let noRouteFound = ResponseFlags(rawValue: 1 << 4)
    /// `RL`: rate limited (Lambda's throttling is told by `response_code_details`).
    public static let rateLimited = ResponseFlags(rawValue: 1 << 5)
    /// `DC`: the client went away before the response was complete.
    public static let downstreamConnectionTermination = ResponseFlags(rawValue: 1 << 6)
    /// `UAEX`: refused by authorization (intentions), as Envoy's external authorization flags it.
    public static let unauthorizedExternalService = ResponseFlags(rawValue: 1 << 7)
    /// `UO`: upstream overflow (Envoy's circuit breaking): as many streamed answers as allowed are
    /// in progress.
    public static let upstreamOverflow = ResponseFlags(rawValue: 1 << 8)

    /// The flags with their short codes, in the order Envoy's `ResponseFlagUtils` lists them
    /// (`ALL_RESPONSE_STRINGS_FLAGS`), the order older Envoy releases join them in. (Recent Envoy
    /// joins them in the order they were set, which an option set does not keep.)
    static let envoyCodes: [(flag: ResponseFlags, code: String)] = [
        (.upstreamRequestTimeout, "UT"),
        (.upstreamConnectionFailure, "UF"),
        (.upstreamConnectionTermination, "UC"),
        (.upstreamOverflow, "UO"),
        (.noRouteFound, "NR"),
        (.rateLimited, "RL"),
        (.unauthorizedExternalService, "UAEX"),
        (.downstreamConnectionTermination, "DC"),
        (.upstreamRetryLimitExceeded, "URX"),
    ]

    /// The flags as Envoy writes them: short codes joined by `,` in Envoy's order; `-` when none.
    public var envoyString: String {
        if isEmpty { return "-" }
        return Self.envoyCodes.filter { contains($0.flag) }.map(\.code).joined(separator: ",")
    }
}

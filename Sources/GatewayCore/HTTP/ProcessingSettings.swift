/// Request limits and defaults (docs/DECISIONS.md D13 to D15 and D24 to D27).
public struct ProcessingSettings: Sendable {
    public var defaultRequestTimeout: Duration = .seconds(15)
    public var maximumSyncPayloadBytes = 6_291_456
    public var maximumAsyncPayloadBytes = 1_048_576
    /// A client connection with no bytes either way for this long is closed (Envoy's default idle
    /// timeout, one hour). An HTTP/1.1 connection waiting for its answer is never idle.
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
    /// Whether a caller's trace sampling decision goes on to X-Ray (`--trace-sampling honor`). When
    /// not, the Invoke call says `Sampled=?` and X-Ray's sampling rules decide, so that no caller
    /// can make every call's trace recorded (and billed).
    public var honorCallerSampling = true
    /// A request body at least this large is made into the Invoke payload and hashed for SigV4 on
    /// NIO's thread pool rather than on an event loop: a 6 MB body takes milliseconds to encode and
    /// hash, which would hold up every other connection of that loop.
    public var offloadedBodyBytes = 256 * 1024
    /// Client connections per listener; a new one beyond it is closed at once.
    public var maxConnections = 10_000
    /// HTTP/2 streams a client may have open at once on one connection (RFC 9113 recommends at
    /// least 100; nginx allows 128; each may hold a Lambda answer).
    public var maxConcurrentStreams = 100
    public init() {}
}

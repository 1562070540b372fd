import NIOCore
import NIOHTTP1

/// One HTTP/1.1 request to the endpoint, encoded in full before it is written
/// (`UpstreamRequestEncoder`).
struct UpstreamRequest: Sendable {
    /// The head, with the body behind it when the body is small.
    var bytes: ByteBuffer
    /// A large body, written after `bytes` as it is.
    var largeBody: ByteBuffer?
    /// The request is a HEAD: its answer is a head alone, whatever its fields say.
    var isHEAD: Bool
}

/// Lambda's whole answer (a buffered Invoke answer is at most ~6 MB), or, for an exchange with an
/// `UpstreamStreamSink` whose answer was a 200, the end of a body that went to the sink.
struct UpstreamResponse: Sendable {
    var status: Int
    var headers: UpstreamHeaders
    var body: ByteBuffer
    /// Whether the connection may carry another request (HTTP/1.1 without `Connection: close`).
    var keepAlive: Bool
    /// Bytes of the exchange's `ResponseBudget` the answer still holds (the caller gives them back).
    var heldBytes = 0
    /// The connection's own address, `ip:port` (Envoy's `%UPSTREAM_LOCAL_ADDRESS%`).
    var localAddress: String?
    /// The body went to the exchange's stream sink as it arrived; `body` is empty.
    var streamed = false
}

/// Where a streamed answer goes as it arrives, called on the upstream connection's event loop. Only
/// a 200 streams; any other status is an AWS error answer, collected whole as in a buffered call.
struct UpstreamStreamSink: Sendable {
    /// The 200's head, the call's `attempts` so far, and how to abandon the answer (it closes the
    /// connection if it still carries this exchange; the exchange then fails as `abandoned`).
    var head: @Sendable (_ headers: HTTPHeaders, _ localAddress: String?, _ attempts: Int, _ cancel: @escaping @Sendable () -> Void) -> Void
    /// A piece of the body. Its bytes were taken from the exchange's `ResponseBudget` (when it has
    /// one) and are the sink's to give back; reading pauses while the budget is spent.
    var body: @Sendable (ByteBuffer) -> Void
    /// The exchange was taken by a connection: how to abandon it from then on, answer or not (as
    /// `head`'s cancel; the exchange fails as `abandoned`).
    var attached: @Sendable (_ cancel: @escaping @Sendable () -> Void) -> Void = { _ in }
    /// Requests sent for the call with this one (set by the client before each attempt).
    var attempts = 1
}

/// Why an exchange with the endpoint failed. The Invoke client turns it into a `LambdaInvokeError`.
enum UpstreamFailure: Error {
    /// TCP connect (or name resolution) failed or timed out: nothing was sent.
    case connect(any Error)
    /// The connection closed, or failed with `cause`, before a byte of the answer arrived.
    /// `requestWritten`: the whole request had been handed to the socket, so the endpoint may have
    /// read it and the function may have run.
    case closedBeforeResponse(cause: (any Error)?, requestWritten: Bool)
    /// As `closedBeforeResponse`, on a connection that had served before and waited in the pool,
    /// before the request was completely written: the endpoint closed it while it was idle (an
    /// incomplete request is never invoked). Worth another try on a new connection; a request that
    /// was written is never sent twice, since the function may already have run.
    case staleConnection(cause: (any Error)?)
    /// The connection closed, or failed with `cause`, in the middle of the answer.
    case closedMidResponse(cause: (any Error)?)
    /// The deadline passed: waiting for a connection, or for the answer.
    case timedOut
    /// The answer is longer than the limit (by its `Content-Length`, or as it arrived).
    case responseTooLarge(limit: Int)
    /// The answer is not HTTP/1.1 the decoder accepts, or came when nothing was asked.
    case malformedResponse(String)
    /// The client is shutting down.
    case shutDown
    /// The client connection the answer was for closed while the answer waited for room in its
    /// `ResponseBudget`; the answer was not read.
    case abandoned
}

/// What is written into an upstream channel: the request, and where its answer goes.
struct UpstreamExchange: Sendable {
    var request: UpstreamRequest
    /// Called once, on the connection's event loop, with the answer or why there is none. A
    /// callback rather than a promise: a future per exchange costs an allocation and its type's
    /// metadata look-ups, on the path of every Invoke call.
    var completion: @Sendable (Result<UpstreamResponse, UpstreamFailure>) -> Void
    var deadline: NIODeadline
    var maximumResponseBytes: Int
    /// The client connection's answer bytes: reading waits while the answer does not fit.
    var budget: ResponseBudget?
    /// Set for `InvokeWithResponseStream`: a 200's body goes here piece by piece, never collected,
    /// and `maximumResponseBytes` does not apply to it.
    var stream: UpstreamStreamSink?
}

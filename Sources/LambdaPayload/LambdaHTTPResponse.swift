import NIOCore

/// The HTTP response the gateway writes back to the client.
public struct LambdaHTTPResponse: Sendable, Equatable {
    public var status: Int
    /// In order; the same name may repeat (`set-cookie`). Names are lower-case.
    public var headers: [HTTPField]
    public var body: ByteBuffer

    public init(status: Int, headers: [HTTPField] = [], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func values(_ name: String) -> [String] {
        headers.filter { $0.name.asciiCaseInsensitiveEquals(name) }.map(\.value)
    }

    /// A gateway error: `{"error": code, "message": message}` as JSON (docs/COMPATIBILITY.md, Errors the gateway gives itself).
    public static func error(status: Int, code: String, message: String, headers: [HTTPField] = []) -> Self {
        var writer = JSONWriter(capacity: 64 + message.utf8.count)
        writer.beginObject()
        writer.member("error", code)
        writer.member("message", message)
        writer.endObject()
        return Self(status: status, headers: [HTTPField("content-type", "application/json")] + headers, body: writer.buffer)
    }
}

/// What Lambda answered to an Invoke call that succeeded at the API level (200 or 202).
public struct LambdaInvocationResult: Sendable, Equatable {
    /// Lambda's HTTP status: 200 (sync), 202 (async).
    public var statusCode: Int
    /// `X-Amz-Function-Error` (`Unhandled`, `Handled`), when the function failed.
    public var functionError: String?
    /// `x-amzn-RequestId`.
    public var requestID: String?
    public var payload: ByteBuffer
    /// Bytes of the client connection's answer budget this result still holds: whoever turns it
    /// into the client's answer gives them back once that answer is accounted for (0: none).
    public var heldBytes: Int
    /// Requests sent to Lambda for this result, retries included (`%UPSTREAM_REQUEST_ATTEMPT_COUNT%`).
    public var attempts: Int
    /// The local address of the connection the answer came on, `ip:port` (`%UPSTREAM_LOCAL_ADDRESS%`).
    /// Where the answer came from, not what it is: equality leaves it out.
    public var upstreamLocalAddress: String?

    public init(statusCode: Int, functionError: String? = nil, requestID: String? = nil, payload: ByteBuffer = ByteBuffer(), heldBytes: Int = 0, attempts: Int = 1) {
        self.statusCode = statusCode
        self.functionError = functionError
        self.requestID = requestID
        self.payload = payload
        self.heldBytes = heldBytes
        self.attempts = attempts
    }
}

extension LambdaInvocationResult {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.statusCode == rhs.statusCode && lhs.functionError == rhs.functionError && lhs.requestID == rhs.requestID && lhs.payload == rhs.payload
            && lhs.heldBytes == rhs.heldBytes && lhs.attempts == rhs.attempts
    }
}

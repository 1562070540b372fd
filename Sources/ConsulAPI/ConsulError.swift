/// A failed Consul request. Every kind is retried with backoff by a watch; none clears data.
public struct ConsulError: Error, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The agent answered with this status (403 permission, 500 no leader, 429 rate limited...).
        case status(Int)
        /// Connection, TLS or timeout.
        case transport
        /// The body was not the JSON the endpoint documents.
        case malformedBody
        /// A blocking endpoint answered without `X-Consul-Index`.
        case missingIndex
    }

    public var code: Code
    /// The endpoint (path and query, never the token).
    public var endpoint: String
    public var message: String
    /// The answer's `Retry-After`, when it had one the client could read (`ConsulClient.send`).
    public var retryAfter: Duration?

    public init(_ code: Code, endpoint: String, _ message: String, retryAfter: Duration? = nil) {
        self.code = code
        self.endpoint = endpoint
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(endpoint): \(message)" }

    /// `ACL not found`: the token is unknown (re-read the token file).
    public var isUnknownToken: Bool { code == .status(403) && message.contains("ACL not found") }

    /// A known token that lacks a permission for this request (`Permission denied: …`).
    public var isPermissionDenied: Bool { code == .status(403) && !isUnknownToken }
}

/// What one answer carried besides its body.
public struct ConsulMetadata: Sendable, Hashable {
    /// `X-Consul-Index`.
    public var index: UInt64?
    /// `X-Consul-Default-ACL-Policy` (`allow`/`deny`).
    public var defaultACLPolicy: String?
    /// `X-Consul-Results-Filtered-By-ACLs: true`.
    public var filteredByACLs: Bool
    /// The request carried no token (Consul then never sets `X-Consul-Results-Filtered-By-ACLs`).
    public var anonymous: Bool

    public init(index: UInt64? = nil, defaultACLPolicy: String? = nil, filteredByACLs: Bool = false, anonymous: Bool = false) {
        self.index = index
        self.defaultACLPolicy = defaultACLPolicy
        self.filteredByACLs = filteredByACLs
        self.anonymous = anonymous
    }
}

/// A config entry read: the entry, or Consul's 404 "absent" (a valid, watchable answer).
public enum ConfigEntryAnswer<Entry: Sendable & Hashable>: Sendable, Hashable {
    case present(Entry)
    case absent

    public var entry: Entry? {
        if case .present(let entry) = self { return entry }
        return nil
    }
}

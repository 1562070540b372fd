/// `GET /v1/connect/intentions/match?by=destination&name=…`: destination → intentions in evaluation order.
public typealias IntentionMatches = [String: [Intention]]

/// One intention as the match endpoint returns it (consul-api.md §5.9).
public struct Intention: Decodable, Sendable, Hashable {
    @Zero public var Description: String
    @Zero public var SourceName: String
    @Zero public var SourceNS: String
    @Zero public var SourcePartition: String
    @Zero public var SourcePeer: String
    @Zero public var SourceSamenessGroup: String
    @Zero public var SourceType: String
    @Zero public var DestinationName: String
    @Zero public var DestinationNS: String
    /// `allow` or `deny`; empty when `Permissions` decide (L7).
    @Zero public var Action: String
    @Zero public var Permissions: [IntentionPermission]
    public var JWT: FreeFormJSON?
    @Zero public var Precedence: Int
    @Zero public var CreateIndex: UInt64
    @Zero public var ModifyIndex: UInt64
}

public struct IntentionPermission: Decodable, Sendable, Hashable {
    @Zero public var Action: String
    public var HTTP: IntentionHTTPPermission?
    public var JWT: FreeFormJSON?
}

public struct IntentionHTTPPermission: Decodable, Sendable, Hashable {
    @Zero public var PathExact: String
    @Zero public var PathPrefix: String
    @Zero public var PathRegex: String
    @Zero public var Methods: [String]
    @Zero public var Header: [IntentionHeaderPermission]
}

public struct IntentionHeaderPermission: Decodable, Sendable, Hashable {
    @Zero public var Name: String
    @Zero public var Present: Bool
    @Zero public var Exact: String
    @Zero public var Prefix: String
    @Zero public var Suffix: String
    @Zero public var Contains: String
    @Zero public var Regex: String
    @Zero public var IgnoreCase: Bool
    @Zero public var Invert: Bool
}

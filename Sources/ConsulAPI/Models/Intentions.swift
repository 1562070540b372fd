/// `GET /v1/connect/intentions/match?by=destination&name=…`: destination → intentions in evaluation order.
public typealias IntentionMatches = [String: [Intention]]

/// One intention as the match endpoint returns it (Consul's intentions API documentation).
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

/// One `service-intentions` config entry as `GET /v1/config/service-intentions` lists it: the
/// intentions of one destination (`Name`, `*` for every service of its namespace), one per source.
public struct ServiceIntentionsEntry: Decodable, Sendable, Hashable {
    @Zero public var Kind: String
    @Zero public var Name: String
    @Zero public var Namespace: String
    @Zero public var Partition: String
    @Zero public var Sources: [SourceIntention]
    /// A JWT requirement of the destination: Consul copies it into every intention of the entry.
    public var JWT: FreeFormJSON?
    @Zero public var CreateIndex: UInt64
    @Zero public var ModifyIndex: UInt64
}

/// One source of a `service-intentions` entry (what the match endpoint turns into an `Intention`).
public struct SourceIntention: Decodable, Sendable, Hashable {
    @Zero public var Name: String
    @Zero public var Namespace: String
    @Zero public var Partition: String
    @Zero public var Peer: String
    @Zero public var SamenessGroup: String
    /// `Type` (`consul`; empty from older agents).
    @Zero public var sourceType: String
    @Zero public var Action: String
    @Zero public var Permissions: [IntentionPermission]
    /// Computed by Consul on every write (Consul's intention precedence table); 0 when the answer lacks it.
    @Zero public var Precedence: Int
    @Zero public var Description: String

    enum CodingKeys: String, CodingKey {
        case Name, Namespace, Partition, Peer, SamenessGroup, Action, Permissions, Precedence, Description
        case sourceType = "Type"
    }
}

/// A list endpoint's answer with what it says about entries the token may not read.
///
/// The flag is part of the value, not only of the metadata: a watch delivers an answer only when
/// its value changed, and an entry hidden by ACLs changes the flag without changing the entries.
public struct ACLFilteredList<Element: Sendable & Hashable>: Sendable, Hashable {
    public var entries: [Element]
    /// `X-Consul-Results-Filtered-By-ACLs: true`: some entries were left out.
    public var filteredByACLs: Bool
    /// The request carried no token. Consul never reports filtering to the anonymous token
    /// (`maskResultsFilteredByACLs` in its RPC layer), so then `filteredByACLs` proves nothing.
    public var anonymous: Bool
    /// `X-Consul-Default-ACL-Policy`: `allow` when ACLs are off or allow by default.
    public var defaultACLPolicy: String?

    public init(entries: [Element], filteredByACLs: Bool, anonymous: Bool = false, defaultACLPolicy: String? = nil) {
        self.entries = entries
        self.filteredByACLs = filteredByACLs
        self.anonymous = anonymous
        self.defaultACLPolicy = defaultACLPolicy
    }

    /// Whether the answer is known to hold every entry: not filtered, and either asked with a
    /// token (so Consul would have said) or from an agent whose ACLs allow by default.
    public var isComplete: Bool {
        !filteredByACLs && (!anonymous || defaultACLPolicy?.lowercased() == "allow")
    }
}

extension WatchEndpoint {
    /// A JSON array list endpoint (`/v1/config/<kind>`) with its ACL filtering.
    public static func aclFilteredList<Element: Decodable>(_ path: String, scope: ConsulScope? = nil) -> Self where Value == ACLFilteredList<Element> {
        WatchEndpoint(path: path, scope: scope) { response throws(ConsulError) in
            ACLFilteredList(
                entries: try ConsulClient.decode([Element].self, response.body, endpoint: path),
                filteredByACLs: response.metadata.filteredByACLs,
                anonymous: response.metadata.anonymous,
                defaultACLPolicy: response.metadata.defaultACLPolicy
            )
        }
    }
}

/// An Enterprise admin partition and namespace (Consul's `partition` and `ns` query parameters).
/// Community Edition has only the default one; empty strings mean `default` everywhere.
public struct ConsulScope: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var partition: String
    public var namespace: String

    public init(partition: String = "", namespace: String = "") {
        self.partition = partition.isEmpty ? "default" : partition
        self.namespace = namespace.isEmpty ? "default" : namespace
    }

    public static let `default` = ConsulScope()

    public var isDefault: Bool { self == .default }

    /// How a service of this scope is named where one name must tell them apart (snapshot keys,
    /// logs, metric labels): the plain name in the default scope, else `partition/namespace/name`
    /// like Consul Enterprise's own `ServiceName.String()`.
    public func qualified(_ name: String) -> String {
        isDefault ? name : "\(partition)/\(namespace)/\(name)"
    }

    public var description: String { "\(partition)/\(namespace)" }

    public static func < (lhs: ConsulScope, rhs: ConsulScope) -> Bool {
        (lhs.partition, lhs.namespace) < (rhs.partition, rhs.namespace)
    }
}

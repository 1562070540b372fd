import ConsulAPI
import Foundation
import LambdaPayload

/// The data of the Consul API test server (README.md, Tests): one raft-like index bumped by every
/// write, and per-table indexes that blocking queries compare against.
///
/// Config entries, instances and leaves live in a partition and namespace (`ConsulScope`), keyed by
/// `scope.qualified(name)`; in CE mode everything is in the default scope.
struct ConsulTestStore {
    struct StoredEntry {
        var value: JSONValue
        var scope: ConsulScope
        var createIndex: UInt64
        var modifyIndex: UInt64
    }

    struct Instance {
        var node: String
        var id: String
        var service: String
        var scope = ConsulScope.default
        var tags: [String]
        var meta: [String: String]
        var address: String
        var port: Int
        var kind: String
        var createIndex: UInt64
        var modifyIndex: UInt64
    }

    struct Root {
        var id: String
        var ca: TestCA
        var pem: String
        var index: UInt64
    }

    struct Leaf {
        var service: String
        var scope: ConsulScope
        var certificatePEM: String
        var keyPEM: String
        var serial: String
        var validAfter: Date
        var validBefore: Date
        var index: UInt64
    }

    var index: UInt64 = 10
    var configIndex: UInt64 = 1
    var catalogIndex: UInt64 = 1
    var rootsIndex: UInt64 = 1
    var configEntries: [String: [String: StoredEntry]] = [:]
    var instances: [String: [Instance]] = [:]
    var nodeMeta: [String: [String: String]] = [:]
    var roots: [Root] = []
    var activeRootID = ""
    var leaves: [String: Leaf] = [:]
    var createdNamespaces: Set<ConsulScope> = []

    mutating func bump() -> UInt64 {
        index += 1
        return index
    }

    // MARK: Config entries

    func entry(kind: String, name: String, scope: ConsulScope = .default) -> StoredEntry? {
        configEntries[kind]?[scope.qualified(name)]
    }

    /// The scope an entry names in its `Partition` and `Namespace` fields, else `fallback`.
    static func scope(of value: JSONValue, fallback: ConsulScope = .default) -> ConsulScope {
        let partition = value["Partition"]?.text ?? ""
        let namespace = value["Namespace"]?.text ?? ""
        if partition.isEmpty && namespace.isEmpty { return fallback }
        return ConsulScope(partition: partition.isEmpty ? fallback.partition : partition, namespace: namespace.isEmpty ? fallback.namespace : namespace)
    }

    /// Stores an entry; with `cas`, only when it matches the current `ModifyIndex` (0 = create only).
    mutating func putConfigEntry(_ value: JSONValue, cas: UInt64?, scope fallback: ConsulScope = .default) -> Bool {
        guard case .string(let kind)? = value["Kind"], case .string(let name)? = value["Name"] else { return false }
        let scope = Self.scope(of: value, fallback: fallback)
        let key = scope.qualified(name)
        let existing = configEntries[kind]?[key]
        if let cas {
            if cas == 0 && existing != nil { return false }
            if cas != 0 && existing?.modifyIndex != cas { return false }
        }
        let modify = bump()
        configIndex = modify
        configEntries[kind, default: [:]][key] = StoredEntry(value: value, scope: scope, createIndex: existing?.createIndex ?? modify, modifyIndex: modify)
        return true
    }

    mutating func deleteConfigEntry(kind: String, name: String, scope: ConsulScope = .default, cas: UInt64?) -> Bool {
        let key = scope.qualified(name)
        if let cas, configEntries[kind]?[key]?.modifyIndex != cas { return false }
        guard configEntries[kind]?.removeValue(forKey: key) != nil else { return true }
        configIndex = bump()
        return true
    }

    func rendered(_ entry: StoredEntry) -> JSONValue {
        guard case .object(var members) = entry.value else { return entry.value }
        members.removeAll { $0.name == "CreateIndex" || $0.name == "ModifyIndex" }
        members.append(JSONMember("CreateIndex", .number(String(entry.createIndex))))
        members.append(JSONMember("ModifyIndex", .number(String(entry.modifyIndex))))
        return .object(members)
    }

    // MARK: Catalog

    mutating func register(_ instance: Instance, nodeMeta meta: [String: String]?) {
        var instance = instance
        let modify = bump()
        catalogIndex = modify
        let key = instance.scope.qualified(instance.service)
        var list = instances[key] ?? []
        if let position = list.firstIndex(where: { $0.node == instance.node && $0.id == instance.id }) {
            instance.createIndex = list[position].createIndex
            instance.modifyIndex = modify
            list[position] = instance
        } else {
            instance.createIndex = modify
            instance.modifyIndex = modify
            list.append(instance)
        }
        instances[key] = list
        if let meta { nodeMeta[instance.node] = meta }
    }

    /// `scope` nil: every scope (the agent's own services).
    mutating func deregister(node: String, serviceID: String, scope: ConsulScope? = nil) {
        for (service, list) in instances {
            let kept = list.filter { !($0.node == node && $0.id == serviceID && (scope == nil || $0.scope == scope)) }
            if kept.count != list.count {
                instances[service] = kept.isEmpty ? nil : kept
                catalogIndex = bump()
            }
        }
    }

    /// The namespaces of a partition (Enterprise): `default`, those created, and those in use.
    func namespaces(in partition: String) -> [String] {
        var names: Set<String> = ["default"]
        names.formUnion(createdNamespaces.filter { $0.partition == partition }.map(\.namespace))
        names.formUnion(instances.values.joined().filter { $0.scope.partition == partition }.map(\.scope.namespace))
        names.formUnion(configEntries.values.flatMap(\.values).filter { $0.scope.partition == partition }.map(\.scope.namespace))
        return names.sorted()
    }

    /// The names of the services with an instance in `scope`.
    func serviceNames(in scope: ConsulScope) -> [String] {
        instances.values.compactMap { list in list.first.flatMap { $0.scope == scope ? $0.service : nil } }.sorted()
    }

    /// `terminating-gateway` entry's services with their scopes, `*` expanded against the catalog of
    /// its scope, as Consul expands it.
    func gatewayServices(_ gateway: String) -> [(name: String, scope: ConsulScope)] {
        guard case .array(let services)? = entry(kind: "terminating-gateway", name: gateway)?.value["Services"] else { return [] }
        var linked: [(name: String, scope: ConsulScope)] = []
        for service in services {
            guard case .string(let name)? = service["Name"] else { continue }
            let scope = Self.scope(of: service)
            if name == "*" {
                linked += serviceNames(in: scope).filter { name in !instances[scope.qualified(name)]!.contains { $0.kind == "terminating-gateway" } }.map { ($0, scope) }
            } else {
                linked.append((name, scope))
            }
        }
        var seen = Set<String>()
        return linked.filter { seen.insert($0.scope.qualified($0.name)).inserted }
    }

    // MARK: Intentions (stored as service-intentions entries)

    /// Consul's intention precedence table, written out as its `computeIntentionPrecedence`
    /// gives it: rows by the destination's exact parts, columns by the source's.
    static func precedence(sourceNamespace: String, sourceName: String, destinationNamespace: String, destinationName: String) -> Int {
        let table: [String: Int] = [
            "exact exact exact exact": 9, "exact * exact exact": 8, "* * exact exact": 7,
            "exact exact exact *": 6, "exact * exact *": 5, "* * exact *": 4,
            "exact exact * *": 3, "exact * * *": 2, "* * * *": 1,
        ]
        let parts = [sourceNamespace, sourceName, destinationNamespace, destinationName].map { $0 == "*" ? "*" : "exact" }
        return table[parts.joined(separator: " ")] ?? 0
    }

    /// A source's partition and namespace as Consul stores them: those it names, else the
    /// destination's (`MergeNoWildcard` on write).
    static func sourceScope(_ source: JSONValue, destination: ConsulScope) -> ConsulScope {
        scope(of: source, fallback: destination)
    }

    static func precedence(of source: JSONValue, entryName: String, scope: ConsulScope) -> Int {
        precedence(
            sourceNamespace: sourceScope(source, destination: scope).namespace, sourceName: source["Name"]?.text ?? "",
            destinationNamespace: scope.namespace, destinationName: entryName
        )
    }

    /// A `service-intentions` entry as the list shows it: Consul computes `Precedence` for every
    /// source on write and keeps the sources sorted by it (stable).
    func renderedIntentions(_ stored: StoredEntry) -> JSONValue {
        guard case .object(var members) = rendered(stored), let position = members.firstIndex(where: { $0.name == "Sources" }),
            case .array(let sources) = members[position].value
        else { return rendered(stored) }
        let name = stored.value["Name"]?.text ?? ""
        let withPrecedence = sources.map { source -> (Int, JSONValue) in
            let precedence = Self.precedence(of: source, entryName: name, scope: stored.scope)
            guard case .object(var fields) = source else { return (precedence, source) }
            fields.removeAll { $0.name == "Precedence" }
            fields.append(JSONMember("Precedence", .number(String(precedence))))
            return (precedence, .object(fields))
        }
        let sorted = withPrecedence.enumerated().sorted { $0.element.0 != $1.element.0 ? $0.element.0 > $1.element.0 : $0.offset < $1.offset }
        members[position] = JSONMember("Sources", .array(sorted.map(\.element.1)))
        return .object(members)
    }

    /// Matching intentions for `destination` in `scope`, as the match endpoint orders them
    /// (Consul's `IntentionPrecedenceSorter`: precedence descending, then source namespace, source
    /// name, destination name).
    func intentions(for destination: String, in scope: ConsulScope = .default) -> [JSONValue] {
        var matched: [(precedence: Int, key: [String], value: JSONValue)] = []
        for entryName in [destination, "*"] {
            guard let stored = entry(kind: "service-intentions", name: entryName, scope: scope), case .array(let sources)? = stored.value["Sources"] else { continue }
            for source in sources {
                guard case .string(let sourceName)? = source["Name"] else { continue }
                let precedence = Self.precedence(of: source, entryName: entryName, scope: scope)
                let sourceScope = Self.sourceScope(source, destination: scope)
                var members: [JSONMember] = [
                    JSONMember("Description", source["Description"] ?? .string("")),
                    JSONMember("SourceNS", .string(sourceScope.namespace)),
                    JSONMember("SourcePartition", .string(sourceScope.partition)),
                    JSONMember("SourceName", .string(sourceName)),
                    JSONMember("DestinationNS", .string(scope.namespace)),
                    JSONMember("DestinationPartition", .string(scope.partition)),
                    JSONMember("DestinationName", .string(entryName)),
                    JSONMember("SourceType", source["Type"] ?? .string("consul")),
                    JSONMember("Action", source["Action"] ?? .string("")),
                ]
                for field in ["Peer", "SamenessGroup"] {
                    if let value = source[field] { members.append(JSONMember("Source" + field, value)) }
                }
                if let permissions = source["Permissions"] { members.append(JSONMember("Permissions", permissions)) }
                // The destination's JWT requirement goes into each of its intentions (`ToIntention`).
                if let jwt = stored.value["JWT"] { members.append(JSONMember("JWT", jwt)) }
                members.append(JSONMember("Precedence", .number(String(precedence))))
                members.append(JSONMember("CreateIndex", .number(String(stored.createIndex))))
                members.append(JSONMember("ModifyIndex", .number(String(stored.modifyIndex))))
                matched.append((precedence, [sourceScope.namespace, sourceName, entryName], .object(members)))
            }
        }
        return matched.sorted { $0.precedence != $1.precedence ? $0.precedence > $1.precedence : $0.key.lexicographicallyPrecedes($1.key) }.map(\.value)
    }
}

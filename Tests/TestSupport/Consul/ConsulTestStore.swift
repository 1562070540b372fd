import ConsulAPI
import Foundation
import LambdaPayload

/// The data of the Consul API test server (consul-api.md §8.4): one raft-like index bumped by every
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

    mutating func deregister(node: String, serviceID: String) {
        for (service, list) in instances {
            let kept = list.filter { !($0.node == node && $0.id == serviceID) }
            if kept.count != list.count {
                instances[service] = kept.isEmpty ? nil : kept
                catalogIndex = bump()
            }
        }
    }

    /// The names of the services with an instance in `scope`.
    func serviceNames(in scope: ConsulScope) -> [String] {
        instances.values.compactMap { list in list.first.flatMap { $0.scope == scope ? $0.service : nil } }.sorted()
    }

    /// `terminating-gateway` entry's services with their scopes, `*` expanded against the catalog of
    /// its scope (consul-api.md §8.4).
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

    /// Matching intentions for `destination` in `scope`, precedence descending (mesh-identity.md
    /// §6.2, for exact and wildcard names within one namespace).
    func intentions(for destination: String, in scope: ConsulScope = .default) -> [JSONValue] {
        var matched: [(precedence: Int, order: Int, value: JSONValue)] = []
        for entryName in [destination, "*"] {
            guard let stored = entry(kind: "service-intentions", name: entryName, scope: scope), case .array(let sources)? = stored.value["Sources"] else { continue }
            for source in sources {
                guard case .string(let sourceName)? = source["Name"] else { continue }
                let precedence = (entryName == "*" ? 6 : 9) - (sourceName == "*" ? 1 : 0)
                let sourceScope = Self.scope(of: source)
                var members: [JSONMember] = [
                    JSONMember("Description", source["Description"] ?? .string("")),
                    JSONMember("SourceNS", .string(sourceScope.namespace)),
                    JSONMember("SourcePartition", .string(sourceScope.partition)),
                    JSONMember("SourceName", .string(sourceName)),
                    JSONMember("DestinationNS", .string(scope.namespace)),
                    JSONMember("DestinationPartition", .string(scope.partition)),
                    JSONMember("DestinationName", .string(entryName)),
                    JSONMember("SourceType", .string("consul")),
                    JSONMember("Action", source["Action"] ?? .string("")),
                ]
                if let permissions = source["Permissions"] { members.append(JSONMember("Permissions", permissions)) }
                members.append(JSONMember("Precedence", .number(String(precedence))))
                members.append(JSONMember("CreateIndex", .number(String(stored.createIndex))))
                members.append(JSONMember("ModifyIndex", .number(String(stored.modifyIndex))))
                matched.append((precedence, matched.count, .object(members)))
            }
        }
        return matched.sorted { $0.precedence != $1.precedence ? $0.precedence > $1.precedence : $0.order < $1.order }.map(\.value)
    }
}

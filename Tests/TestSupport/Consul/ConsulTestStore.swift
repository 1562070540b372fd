import Foundation
import LambdaPayload

/// The data of the Consul API test server (consul-api.md §8.4): one raft-like index bumped by every
/// write, and per-table indexes that blocking queries compare against.
struct ConsulTestStore {
    struct StoredEntry {
        var value: JSONValue
        var createIndex: UInt64
        var modifyIndex: UInt64
    }

    struct Instance {
        var node: String
        var id: String
        var service: String
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

    func entry(kind: String, name: String) -> StoredEntry? {
        configEntries[kind]?[name]
    }

    /// Stores an entry; with `cas`, only when it matches the current `ModifyIndex` (0 = create only).
    mutating func putConfigEntry(_ value: JSONValue, cas: UInt64?) -> Bool {
        guard case .string(let kind)? = value["Kind"], case .string(let name)? = value["Name"] else { return false }
        let existing = configEntries[kind]?[name]
        if let cas {
            if cas == 0 && existing != nil { return false }
            if cas != 0 && existing?.modifyIndex != cas { return false }
        }
        let modify = bump()
        configIndex = modify
        configEntries[kind, default: [:]][name] = StoredEntry(value: value, createIndex: existing?.createIndex ?? modify, modifyIndex: modify)
        return true
    }

    mutating func deleteConfigEntry(kind: String, name: String, cas: UInt64?) -> Bool {
        if let cas, configEntries[kind]?[name]?.modifyIndex != cas { return false }
        guard configEntries[kind]?.removeValue(forKey: name) != nil else { return true }
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
        var list = instances[instance.service] ?? []
        if let position = list.firstIndex(where: { $0.node == instance.node && $0.id == instance.id }) {
            instance.createIndex = list[position].createIndex
            instance.modifyIndex = modify
            list[position] = instance
        } else {
            instance.createIndex = modify
            instance.modifyIndex = modify
            list.append(instance)
        }
        instances[instance.service] = list
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

    /// `terminating-gateway` entry's services, `*` expanded against the catalog (consul-api.md §8.4).
    func gatewayServices(_ gateway: String) -> [String] {
        guard case .array(let services)? = entry(kind: "terminating-gateway", name: gateway)?.value["Services"] else { return [] }
        var names: [String] = []
        for case .string(let name)? in services.map({ $0["Name"] }) {
            if name == "*" {
                names += instances.keys.sorted().filter { service in !instances[service]!.contains { $0.kind == "terminating-gateway" } }
            } else {
                names.append(name)
            }
        }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    // MARK: Intentions (stored as service-intentions entries)

    /// Matching intentions for `destination`, precedence descending (mesh-identity.md §6.2, CE subset).
    func intentions(for destination: String) -> [JSONValue] {
        var matched: [(precedence: Int, order: Int, value: JSONValue)] = []
        for entryName in [destination, "*"] {
            guard let stored = entry(kind: "service-intentions", name: entryName), case .array(let sources)? = stored.value["Sources"] else { continue }
            for source in sources {
                guard case .string(let sourceName)? = source["Name"] else { continue }
                let precedence = (entryName == "*" ? 6 : 9) - (sourceName == "*" ? 1 : 0)
                var members: [JSONMember] = [
                    JSONMember("Description", source["Description"] ?? .string("")),
                    JSONMember("SourceNS", .string("default")),
                    JSONMember("SourceName", .string(sourceName)),
                    JSONMember("DestinationNS", .string("default")),
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

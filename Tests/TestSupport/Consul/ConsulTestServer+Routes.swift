import ConsulAPI
import Foundation
import LambdaPayload

extension ConsulTestServer {
    /// One answer: status, body, and the table index for `X-Consul-Index` (nil: not a blocking endpoint).
    struct Answer {
        var status: Int
        var body: String
        var index: UInt64?
        var json: Bool = true
        /// `X-Consul-Results-Filtered-By-ACLs: true`: ACLs hid entries of a list.
        var filteredByACLs = false
    }

    func handle(_ request: RecordedRequest) async -> ScriptedResponse {
        let (path, query) = Self.split(request.uri)
        if path.hasPrefix("/_control/") {
            return control(path: path, query: query)
        }
        state.withLockedValue { $0.requests.append(request) }

        if let fault = takeFault(path, method: request.method) {
            switch fault {
            case .status(let status, let body): return respond(Answer(status: status, body: body, index: nil, json: false))
            case .hang: return ScriptedResponse(behaviour: .hang)
            case .closeConnection: return ScriptedResponse(behaviour: .closeWithoutResponse)
            case .malformedBody:
                let index = state.withLockedValue { $0.store.index }
                return respond(Answer(status: 200, body: "{\"truncated\": [", index: index))
            }
        }
        let bearer = request.header("authorization").flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        let token = request.header("x-consul-token") ?? bearer
        let (required, tokens) = state.withLockedValue { ($0.options.requiredToken, $0.options.tokens) }
        if let required, token != required {
            return respond(Answer(status: 403, body: "ACL not found", index: nil, json: false))
        }
        var rules: TokenRules?
        if !tokens.isEmpty {
            guard let token, let known = tokens[token] else { return respond(Answer(status: 403, body: "ACL not found", index: nil, json: false)) }
            rules = known
        }
        let enterprise = state.withLockedValue { $0.options.enterprise }
        for (name, value) in query where !enterprise && (name == "ns" || name == "partition") && !value.isEmpty && value != "default" {
            return respond(Answer(status: 400, body: "Invalid query parameter: \"\(name)\" - Namespaces are a Consul Enterprise feature", index: nil, json: false))
        }

        // A datacenter the agent does not know: Consul has no route to it and answers 500.
        if let dc = query.first(where: { $0.0 == "dc" })?.1, !dc.isEmpty, dc != state.withLockedValue({ $0.options.datacenter }) {
            return respond(Answer(status: 500, body: "No path to datacenter", index: nil, json: false))
        }
        if request.method == "GET" {
            if let refusal = rules.flatMap({ Self.refusal(of: path, query: query, by: $0) }) { return respond(refusal) }
            return await blockingGet(path: path, query: query, rules: rules)
        }
        return respond(write(method: request.method, path: path, query: query, body: request.body))
    }

    // MARK: Blocking reads (Consul's blocking-query documentation)

    func blockingGet(path: String, query: [(String, String)], rules: TokenRules? = nil) async -> ScriptedResponse {
        let requested = query.first { $0.0 == "index" }.flatMap { UInt64($0.1) } ?? 0
        var wait: Duration = .seconds(300)
        if let text = query.first(where: { $0.0 == "wait" })?.1 {
            guard let parsed = try? GoDuration.parse(text), parsed > .zero else {
                return respond(Answer(status: 400, body: "Invalid wait time", index: nil, json: false))
            }
            wait = min(parsed, .seconds(600))
        }
        if state.withLockedValue({ $0.options.waitJitter }) {
            wait += .nanoseconds(Int64.random(in: 0...max(0, (wait / 16).components.seconds * 1_000_000_000 + (wait / 16).components.attoseconds / 1_000_000_000)))
        }
        let deadline = ContinuousClock.now + wait
        if requested > 0 { state.withLockedValue { [wait] in $0.blockingWaits.append(wait) } }
        var holding: UInt64?
        defer {
            if let holding {
                state.withLockedValue { state in
                    state.openLongPolls -= 1
                    state.heldLongPolls[holding] = nil
                }
            }
        }
        while true {
            let (answer, observed) = state.withLockedValue { state in (read(path: path, query: query, rules: rules, state: &state), state.store.index) }
            guard let index = answer.index, requested > 0, index <= requested, ContinuousClock.now < deadline, !Task.isCancelled else {
                return respond(answer)
            }
            if holding == nil {
                let described = query.isEmpty ? path : path + "?" + query.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
                holding = state.withLockedValue { state in
                    state.openLongPolls += 1
                    state.nextLongPoll += 1
                    state.heldLongPolls[state.nextLongPoll] = described
                    return state.nextLongPoll
                }
            }
            await waitForChange(after: observed, until: deadline)
        }
    }

    /// ACL mode: the 403 Consul gives a token without the permission a read needs (in Consul's wording).
    static func refusal(of path: String, query: [(String, String)], by rules: TokenRules) -> Answer? {
        func denied(_ permission: String, _ resource: String) -> Answer {
            Answer(status: 403, body: "Permission denied: token with AccessorID '\(rules.accessorID)' lacks permission '\(permission)' on \"\(resource)\"", index: nil, json: false)
        }
        switch path {
        case "/v1/connect/intentions/match":
            // Consul checks every requested name and refuses the whole query for one (Intention.Match).
            if let name = query.first(where: { $0.0 == "name" && rules.deniedIntentionReads.contains($0.1) })?.1 { return denied("intentions:read", name) }
        case "/v1/agent/self" where !rules.agentRead:
            return denied("agent:read", "test-agent")
        default:
            break
        }
        return nil
    }

    /// The partition and namespace a request names (`ns`, `partition`; absent means `default`).
    static func scope(of query: [(String, String)]) -> ConsulScope {
        ConsulScope(partition: query.first { $0.0 == "partition" }?.1 ?? "", namespace: query.first { $0.0 == "ns" }?.1 ?? "")
    }

    func read(path: String, query: [(String, String)], rules: TokenRules? = nil, state: inout State) -> Answer {
        let store = state.store
        let scope = Self.scope(of: query)
        // Segments decoded, as Go's net/http gives Consul `URL.Path`.
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map { $0.removingPercentEncoding ?? String($0) }
        func json(_ value: JSONValue, _ index: UInt64) -> Answer { Answer(status: 200, body: value.jsonText, index: index) }
        switch parts.dropFirst().first.map({ _ in Array(parts.dropFirst()) }) ?? [] {
        case ["agent", "connect", "ca", "roots"]:
            let roots = store.roots.map { root in
                JSONValue.object([
                    JSONMember("ID", .string(root.id)), JSONMember("Name", .string("Consul CA Root Cert")),
                    JSONMember("RootCert", .string(root.pem)), JSONMember("IntermediateCerts", .null),
                    JSONMember("Active", .bool(root.id == store.activeRootID)),
                    JSONMember("CreateIndex", .number(String(root.index))), JSONMember("ModifyIndex", .number(String(root.index))),
                ])
            }
            return json(
                .object([
                    JSONMember("ActiveRootID", .string(store.activeRootID)), JSONMember("TrustDomain", .string(state.options.trustDomain)),
                    JSONMember("Roots", .array(roots)),
                ]),
                store.rootsIndex
            )
        case let route where route.count == 5 && route.starts(with: ["agent", "connect", "ca", "leaf"]):
            let service = route[4]
            let key = scope.qualified(service)
            if state.store.leaves[key] == nil, let root = store.roots.first(where: { $0.id == store.activeRootID }),
                var leaf = try? Self.issueLeaf(service, scope: scope, root: root, options: state.options)
            {
                leaf.index = state.store.bump()
                state.store.leaves[key] = leaf
            }
            guard let leaf = state.store.leaves[key] else { return Answer(status: 500, body: "no CA", index: nil, json: false) }
            state.leafReadsSinceRotation.insert(key)
            let formatter = ISO8601DateFormatter()
            return json(
                .object([
                    JSONMember("SerialNumber", .string(leaf.serial)), JSONMember("CertPEM", .string(leaf.certificatePEM)),
                    JSONMember("PrivateKeyPEM", .string(leaf.keyPEM)), JSONMember("Service", .string(service)),
                    JSONMember("ServiceURI", .string(Self.serviceURI(service, scope: scope, options: state.options))),
                    JSONMember("ValidAfter", .string(formatter.string(from: leaf.validAfter))),
                    JSONMember("ValidBefore", .string(formatter.string(from: leaf.validBefore))),
                    JSONMember("CreateIndex", .number(String(leaf.index))), JSONMember("ModifyIndex", .number(String(leaf.index))),
                ]),
                leaf.index
            )
        case let route where route.count == 3 && route.starts(with: ["catalog", "gateway-services"]):
            let gateway = route[2]
            let index = max(store.configIndex, store.catalogIndex)
            let enterprise = state.options.enterprise
            let linked = store.gatewayServices(gateway).map { service in
                // Enterprise names every linked service's namespace and partition; CE names none.
                let name =
                    enterprise
                    ? [JSONMember("Name", .string(service.name)), JSONMember("Namespace", .string(service.scope.namespace)), JSONMember("Partition", .string(service.scope.partition))]
                    : [JSONMember("Name", .string(service.name))]
                return JSONValue.object([
                    JSONMember("Gateway", .object([JSONMember("Name", .string(gateway))])),
                    JSONMember("Service", .object(name)),
                    JSONMember("GatewayKind", .string("terminating-gateway")),
                    JSONMember("CreateIndex", .number(String(index))), JSONMember("ModifyIndex", .number(String(index))),
                ])
            }
            return json(.array(linked), index)
        case ["catalog", "services"]:
            let services = store.serviceNames(in: scope).map { name in
                JSONMember(name, .array(Array(Set(store.instances[scope.qualified(name)]!.flatMap(\.tags))).sorted().map { .string($0) }))
            }
            return json(.object(services), store.catalogIndex)
        case let route where route.count == 3 && route.starts(with: ["catalog", "node-services"]):
            // The services of one node in the request's scope (Consul's Catalog API; the registrator).
            let node = route[2]
            let onNode = store.instances.values.joined().filter { $0.node == node && $0.scope == scope }.sorted { $0.id < $1.id }
            guard !onNode.isEmpty || store.nodeMeta[node] != nil else {
                return Answer(status: 404, body: "Node not found", index: store.catalogIndex, json: false)
            }
            let services = onNode.map { instance in
                JSONValue.object([
                    JSONMember("ID", .string(instance.id)), JSONMember("Service", .string(instance.service)),
                    JSONMember("Tags", .array(instance.tags.map { .string($0) })),
                    JSONMember("Meta", .object(instance.meta.sorted { $0.key < $1.key }.map { JSONMember($0.key, .string($0.value)) })),
                    JSONMember("Port", .number(String(instance.port))), JSONMember("Address", .string(instance.address)),
                    JSONMember("Namespace", .string(instance.scope.namespace)), JSONMember("Partition", .string(instance.scope.partition)),
                ])
            }
            return json(
                .object([
                    JSONMember(
                        "Node",
                        .object([
                            JSONMember("Node", .string(node)), JSONMember("Datacenter", .string(state.options.datacenter)),
                            JSONMember("Meta", .object((store.nodeMeta[node] ?? [:]).sorted { $0.key < $1.key }.map { JSONMember($0.key, .string($0.value)) })),
                        ])),
                    JSONMember("Services", .array(services)),
                ]),
                store.catalogIndex
            )
        case let route where route.count == 3 && route.starts(with: ["health", "service"]):
            let entries = (store.instances[scope.qualified(route[2])] ?? []).map { instance in
                JSONValue.object([
                    JSONMember(
                        "Node",
                        .object([
                            JSONMember("Node", .string(instance.node)), JSONMember("Address", .string("")),
                            JSONMember("Datacenter", .string(state.options.datacenter)),
                            JSONMember("Meta", .object((store.nodeMeta[instance.node] ?? [:]).sorted { $0.key < $1.key }.map { JSONMember($0.key, .string($0.value)) })),
                        ])),
                    JSONMember(
                        "Service",
                        .object([
                            JSONMember("ID", .string(instance.id)), JSONMember("Service", .string(instance.service)),
                            JSONMember("Tags", .array(instance.tags.map { .string($0) })), JSONMember("Address", .string(instance.address)),
                            JSONMember("Meta", .object(instance.meta.map { JSONMember($0.key, .string($0.value)) })),
                            JSONMember("Port", .number(String(instance.port))),
                            JSONMember("CreateIndex", .number(String(instance.createIndex))), JSONMember("ModifyIndex", .number(String(instance.modifyIndex))),
                        ])),
                    JSONMember("Checks", .array([])),
                ])
            }
            return json(.array(entries), store.catalogIndex)
        case ["config", "service-intentions"]:
            // Consul filters the list by `intentions:read` on each destination and says so (`X-Consul-Results-Filtered-By-ACLs`).
            let kind = store.configEntries["service-intentions"] ?? [:]
            let inScope = kind.keys.sorted().compactMap { kind[$0]!.scope == scope ? kind[$0]! : nil }
            let readable = inScope.filter { rules?.deniedIntentionReads.contains($0.value["Name"]?.text ?? "") != true }
            var answer = json(.array(readable.map(store.renderedIntentions)), store.configIndex)
            answer.filteredByACLs = readable.count < inScope.count
            return answer
        case let route where route.count == 2 && route[0] == "config":
            let kind = store.configEntries[route[1]] ?? [:]
            let entries = kind.keys.sorted().compactMap { kind[$0]!.scope == scope ? store.rendered(kind[$0]!) : nil }
            return json(.array(entries), store.configIndex)
        case let route where route.count == 3 && route[0] == "config":
            guard let entry = store.entry(kind: route[1], name: route[2], scope: scope) else {
                return Answer(status: 404, body: "Config entry not found for \"\(route[1])\" / \"\(route[2])\"", index: store.configIndex, json: false)
            }
            return json(store.rendered(entry), store.configIndex)
        case ["connect", "intentions", "match"]:
            guard query.contains(where: { $0 == ("by", "destination") }) else {
                return Answer(status: 400, body: "required query parameter 'by' not set", index: nil, json: false)
            }
            let names = query.filter { $0.0 == "name" }.map(\.1)
            return json(.object(names.map { JSONMember($0, .array(store.intentions(for: $0, in: scope))) }), store.configIndex)
        case let route where route.count == 3 && route.starts(with: ["agent", "service"]):
            // The local agent's view of one of its services (`GET /v1/agent/service/<id>`).
            guard let instance = store.instances.values.joined().first(where: { $0.node == "test-agent" && $0.id == route[2] }) else {
                return Answer(status: 404, body: "unknown service ID: \(route[2])", index: nil, json: false)
            }
            return json(
                .object([
                    JSONMember("Kind", .string(instance.kind)), JSONMember("ID", .string(instance.id)), JSONMember("Service", .string(instance.service)),
                    JSONMember("Address", .string(instance.address)), JSONMember("Port", .number(String(instance.port))),
                    JSONMember("Meta", .object(instance.meta.sorted { $0.key < $1.key }.map { JSONMember($0.key, .string($0.value)) })),
                ]),
                store.catalogIndex
            )
        case ["namespaces"] where state.options.enterprise:
            // Enterprise: the namespaces of the request's partition (Consul's Namespaces API).
            let names = store.namespaces(in: scope.partition)
            return json(.array(names.map { .object([JSONMember("Name", .string($0)), JSONMember("Partition", .string(scope.partition))]) }), store.catalogIndex)
        case ["agent", "self"]:
            return Answer(
                status: 200,
                body:
                    #"{"Config":{"Datacenter":"\#(state.options.datacenter)","NodeName":"test-agent","Version":"1.21.0"},"DebugConfig":{"DefaultIntentionPolicy":"\#(state.options.agentDefaultIntentionPolicy)"}}"#,
                index: nil
            )
        default:
            return Answer(status: 404, body: "", index: nil, json: false)
        }
    }

    // MARK: Writes

    func write(method: String, path: String, query: [(String, String)], body: [UInt8]) -> Answer {
        let parts = Array(path.split(separator: "/").map { $0.removingPercentEncoding ?? String($0) }.dropFirst())
        let cas = query.first { $0.0 == "cas" }.flatMap { UInt64($0.1) }
        let parsed = try? JSONParser.parse(body)
        let scope = Self.scope(of: query)
        switch (method, parts) {
        case ("PUT", ["config"]):
            guard let entry = parsed, entry.isObject else { return Answer(status: 400, body: "Request decoding failed: invalid JSON", index: nil, json: false) }
            let stored = write { $0.store.putConfigEntry(entry, cas: cas, scope: scope) }
            return Answer(status: 200, body: stored ? "true" : "false", index: nil)
        case ("DELETE", let route) where route.count == 3 && route[0] == "config":
            let deleted = write { $0.store.deleteConfigEntry(kind: route[1], name: route[2], scope: scope, cas: cas) }
            return Answer(status: 200, body: cas == nil ? "{}" : (deleted ? "true" : "false"), index: nil)
        case ("PUT", ["catalog", "register"]):
            guard let registration = parsed, case .string(let node)? = registration["Node"], let service = registration["Service"],
                case .string(let name)? = service["Service"]
            else { return Answer(status: 400, body: "Request decoding failed: missing Node or Service", index: nil, json: false) }
            let skip = registration["SkipNodeUpdate"] == .bool(true)
            let address = registration["Address"]?.text ?? ""
            if !skip && address.isEmpty { return Answer(status: 400, body: "Must provide address if SkipNodeUpdate is not set", index: nil, json: false) }
            let id = service["ID"]?.text.flatMap { $0.isEmpty ? nil : $0 } ?? name
            let tags = service["Tags"]?.texts ?? []
            var meta: [String: String]?
            if case .object(let members)? = registration["NodeMeta"] {
                meta = Dictionary(members.compactMap { member in member.value.text.map { (member.name, $0) } }, uniquingKeysWith: { $1 })
            }
            // Enterprise: the service's namespace and the registration's partition, else the query's.
            let instanceScope = ConsulScope(
                partition: registration["Partition"]?.text ?? scope.partition,
                namespace: service["Namespace"]?.text ?? scope.namespace
            )
            write {
                $0.store.register(.init(node: node, id: id, service: name, scope: instanceScope, tags: tags, meta: [:], address: "", port: 0, kind: "", createIndex: 0, modifyIndex: 0), nodeMeta: meta)
            }
            return Answer(status: 200, body: "true", index: nil)
        case ("PUT", ["catalog", "deregister"]):
            guard let registration = parsed, case .string(let node)? = registration["Node"], case .string(let id)? = registration["ServiceID"] else {
                return Answer(status: 400, body: "Request decoding failed: missing Node or ServiceID", index: nil, json: false)
            }
            write { $0.store.deregister(node: node, serviceID: id, scope: scope) }
            return Answer(status: 200, body: "true", index: nil)
        case ("PUT", ["agent", "service", "register"]):
            guard let registration = parsed, case .string(let name)? = registration["Name"] else {
                return Answer(status: 400, body: "Request decoding failed: missing Name", index: nil, json: false)
            }
            let id = registration["ID"]?.text.flatMap { $0.isEmpty ? nil : $0 } ?? name
            let kind = registration["Kind"]?.text ?? ""
            let port = registration["Port"].flatMap { if case .number(let text) = $0 { Int(text) } else { nil } } ?? 0
            if kind == "terminating-gateway" && port == 0 { return Answer(status: 400, body: "Invalid Service Meta: Port must be non-zero for a terminating-gateway", index: nil, json: false) }
            var meta: [String: String] = [:]
            if case .object(let members)? = registration["Meta"] {
                for member in members { if let text = member.value.text { meta[member.name] = text } }
            }
            let address = registration["Address"]?.text ?? ""
            write { $0.store.register(.init(node: "test-agent", id: id, service: name, tags: [], meta: meta, address: address, port: port, kind: kind, createIndex: 0, modifyIndex: 0), nodeMeta: nil) }
            return Answer(status: 200, body: "", index: nil, json: false)
        case ("PUT", let route) where route.count == 4 && route.starts(with: ["agent", "service", "deregister"]):
            write { $0.store.deregister(node: "test-agent", serviceID: route[3]) }
            return Answer(status: 200, body: "", index: nil, json: false)
        default:
            return Answer(status: 404, body: "", index: nil, json: false)
        }
    }

    // MARK: Helpers

    func respond(_ answer: Answer) -> ScriptedResponse {
        var headers: [(String, String)] = [
            ("X-Consul-Default-Acl-Policy", state.withLockedValue { $0.options.defaultACLPolicy }),
            ("X-Consul-Knownleader", "true"), ("X-Consul-Lastcontact", "0"),
            ("Content-Type", answer.json ? "application/json" : "text/plain; charset=utf-8"),
        ]
        if var index = answer.index {
            if let forced = state.withLockedValue({ state -> UInt64? in
                defer { state.indexOverride = nil }
                return state.indexOverride
            }) {
                index = forced
            }
            headers.append(("X-Consul-Index", String(index)))
        }
        if answer.filteredByACLs { headers.append(("X-Consul-Results-Filtered-By-Acls", "true")) }
        return ScriptedResponse(status: answer.status, headers: headers, body: Array(answer.body.utf8))
    }

    func takeFault(_ path: String, method: String) -> Fault? {
        state.withLockedValue { state in
            guard let position = state.faults.firstIndex(where: { path.hasPrefix($0.prefix) && $0.remaining > 0 && ($0.method == nil || $0.method == method) }) else { return nil }
            state.faults[position].remaining -= 1
            let fault = state.faults[position].fault
            if state.faults[position].remaining == 0 { state.faults.remove(at: position) }
            return fault
        }
    }

    /// A request target split into its path and decoded query items.
    public static func split(_ uri: String) -> (String, [(String, String)]) {
        guard let question = uri.firstIndex(of: "?") else { return (uri, []) }
        let query = uri[uri.index(after: question)...].split(separator: "&").map { part -> (String, String) in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in text.removingPercentEncoding ?? String(text) }
            return (decode(pieces[0]), pieces.count > 1 ? decode(pieces[1]) : "")
        }
        return (String(uri[..<question]), query)
    }
}

extension JSONValue {
    var text: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    var texts: [String] {
        if case .array(let elements) = self { return elements.compactMap(\.text) }
        return []
    }
}

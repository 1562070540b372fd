import ConsulAPI
import Crypto
import Foundation
import LambdaPayload
import MeshIdentity
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A stand-in for a Consul agent's HTTP API, with Consul's JSON shapes and real blocking-query
/// semantics (README.md, Tests), plus controls for tests: change state, rotate the CA, inject faults.
///
/// Consul cannot be installed here; every Consul-facing test talks to this server over real HTTP.
public final class ConsulTestServer: Sendable {
    public struct Options: Sendable {
        public var trustDomain = "11111111-2222-3333-4444-555555555555.consul"
        public var datacenter = "dc1"
        public var defaultACLPolicy = "allow"
        /// Enterprise mode: `ns` and `partition` select the scope of per-service reads (CE mode
        /// answers 400 to any but `default`, as a CE agent does).
        public var enterprise = false
        /// When set, every request must carry this token (`X-Consul-Token` or `Authorization: Bearer`).
        public var requiredToken: String?
        /// ACL mode when not empty: each known token's rules; any other token gets
        /// 403 `ACL not found`.
        public var tokens: [String: TokenRules] = [:]
        /// The agent's `DebugConfig.DefaultIntentionPolicy` on `/v1/agent/self` (`""`, `allow`, `deny`).
        public var agentDefaultIntentionPolicy = ""
        public var leafLifetime: TimeInterval = 72 * 3600
        /// A held long poll waits `wait` plus a random part of up to `wait/16`, as Consul does (Consul's blocking-query documentation).
        public var waitJitter = true
        /// A Consul agent's `limits.http_max_conns_per_client` (default 200, loopback included):
        /// every test of the suite runs under it.
        public var maxConnectionsPerClient: Int? = 200
        /// HTTPS, as an agent with `ports.https` (and `verify_incoming` when the configuration
        /// requires client certificates).
        public var tls: TLSConfiguration?
        public init() {}
    }

    /// What one token may not do in ACL mode; everything else is allowed.
    public struct TokenRules: Sendable {
        public var accessorID: String
        /// Destinations whose intentions the token may not read (`intentions:read`). `*` is the
        /// wildcard destination's entry, which a token with per-service rules only cannot read
        /// (`conf/policies/consul-acl-gateway.hcl`): it is left out of the list, yet the match query for a readable
        /// name still includes its intentions, as Consul does.
        public var deniedIntentionReads: Set<String>
        /// Without `agent:read`, `/v1/agent/self` answers 403.
        public var agentRead: Bool

        public init(accessorID: String = UUID().uuidString.lowercased(), deniedIntentionReads: Set<String> = [], agentRead: Bool = true) {
            self.accessorID = accessorID
            self.deniedIntentionReads = deniedIntentionReads
            self.agentRead = agentRead
        }
    }

    /// A fault for the next `count` requests whose path starts with `pathPrefix`.
    public enum Fault: Sendable {
        case status(Int, body: String)
        case hang
        case closeConnection
        case malformedBody
    }

    struct State {
        var store = ConsulTestStore()
        var options: Options
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waiters whose long poll was cancelled before they registered.
        var cancelledWaiters: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
        var openLongPolls = 0
        /// The long polls held now, by a number of their own: their path and query.
        var heldLongPolls: [UInt64: String] = [:]
        var nextLongPoll: UInt64 = 0
        var faults: [(prefix: String, remaining: Int, fault: Fault, method: String?)] = []
        var indexOverride: UInt64?
        var requests: [RecordedRequest] = []
        /// The services whose leaf was read since the last roots rotation (they have the new root's).
        var leafReadsSinceRotation: Set<String> = []
        /// The wait each blocking read was given, jitter included, in arrival order.
        var blockingWaits: [Duration] = []
    }

    let state: NIOLockedValueBox<State>
    let server: TestHTTPServer

    public var baseURL: String { server.baseURL }
    public var port: Int { server.port }
    /// Connections refused by the per-client limit (`Options.maxConnectionsPerClient`).
    public var refusedConnections: Int { server.refusedConnections }
    /// The most connections one client had open at once (with a per-client limit set).
    public var peakConnectionsPerClient: Int { server.peakConnectionsPerClient }
    /// The connections the busiest client has open now (with a per-client limit set).
    public var openConnectionsPerClient: Int { server.openConnectionsPerClient }
    /// How many linked services have read their leaf since the last roots rotation.
    public var leafReadsSinceRotation: Int { state.withLockedValue { $0.leafReadsSinceRotation.count } }
    /// Every request received, oldest first.
    public var requests: [RecordedRequest] { state.withLockedValue { $0.requests } }
    /// Long polls held open right now (a client that goes away ends its own).
    public var openLongPolls: Int { state.withLockedValue { $0.openLongPolls } }

    /// The long polls held now, each as its path and query (`/v1/catalog/services?index=12&ns=sales`):
    /// a test waits for a watch's poll to be held, or to end, on the agent.
    public var heldLongPolls: [String] { state.withLockedValue { $0.heldLongPolls.values.sorted() } }
    /// The wait each blocking read was given (the requested `wait`, or 5 min, plus Consul's jitter
    /// of up to a sixteenth), in arrival order.
    public var blockingWaits: [Duration] { state.withLockedValue { $0.blockingWaits } }

    public init(options: Options = Options()) async throws {
        let state = NIOLockedValueBox(State(options: options))
        self.state = state
        let box = WeakBox()
        server = try await TestHTTPServer(tls: options.tls, maxConnectionsPerClient: options.maxConnectionsPerClient) { request in
            guard let consul = box.server else { return ScriptedResponse(status: 503) }
            return await consul.handle(request)
        }
        box.server = self
        try rotateRoots(removeOld: true)
    }

    public func shutdown() async {
        wakeAll()
        await server.shutdown()
    }

    // MARK: Controls: data

    /// Stores a config entry given as JSON text (PascalCase, as Consul prints it).
    public func setConfigEntry(_ json: String) throws {
        let value = try JSONParser.parse(Array(json.utf8))
        let stored = write { $0.store.putConfigEntry(value, cas: nil) }
        guard stored else { throw TestSupportError("config entry needs Kind and Name: \(json)") }
    }

    public func deleteConfigEntry(kind: String, name: String) {
        _ = write { $0.store.deleteConfigEntry(kind: kind, name: name, cas: nil) }
    }

    /// Links services to a gateway: writes its `terminating-gateway` entry.
    public func linkServices(_ services: [String], gateway: String = "lambda-gateway") throws {
        try linkServices(scoped: services.map { ($0, .default) }, gateway: gateway)
    }

    /// Links services of any partition and namespace (Enterprise).
    public func linkServices(scoped services: [(name: String, scope: ConsulScope)], gateway: String = "lambda-gateway") throws {
        let list = services.map { service in
            service.scope.isDefault
                ? "{\"Name\":\"\(service.name)\"}"
                : "{\"Name\":\"\(service.name)\",\"Namespace\":\"\(service.scope.namespace)\",\"Partition\":\"\(service.scope.partition)\"}"
        }.joined(separator: ",")
        try setConfigEntry(#"{"Kind":"terminating-gateway","Name":"\#(gateway)","Services":[\#(list)]}"#)
    }

    /// Creates Lambda services in bulk, in one write, as the registrator would (catalog instance,
    /// service-defaults with the Lambda extension, protocol http), and links them all with the
    /// services already linked: the scale tests and `Benchmarks/scale.sh` make thousands this way.
    public func addLinkedLambdaServices(_ names: [String], gateway: String = "lambda-gateway") throws {
        let entries = try names.map { name in
            try JSONParser.parse(
                Array(
                    #"{"Kind":"service-defaults","Name":"\#(name)","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:\#(name)"}}]}"#
                        .utf8))
        }
        let linked = state.withLockedValue { state in
            state.store.gatewayServices(gateway).filter { $0.scope.isDefault }.map(\.name)
        }
        var seen = Set<String>()
        let list = (linked + names).filter { seen.insert($0).inserted }.map { "{\"Name\":\"\($0)\"}" }.joined(separator: ",")
        let gatewayEntry = try JSONParser.parse(Array(#"{"Kind":"terminating-gateway","Name":"\#(gateway)","Services":[\#(list)]}"#.utf8))
        write { state in
            for (name, entry) in zip(names, entries) {
                state.store.register(
                    .init(
                        node: "lambdas", id: name, service: name, scope: .default, tags: ["managed-by-lambda-registrator"], meta: [:], address: "", port: 0, kind: "", createIndex: 0, modifyIndex: 0),
                    nodeMeta: ["external-node": "true", "external-probe": "true"]
                )
                _ = state.store.putConfigEntry(entry, cas: nil)
            }
            _ = state.store.putConfigEntry(gatewayEntry, cas: nil)
        }
    }

    /// Registers a catalog instance on the external node `lambdas`, as the registrator does.
    public func registerInstance(_ service: String, scope: ConsulScope = .default, node: String = "lambdas", tags: [String] = ["managed-by-lambda-registrator"]) {
        write {
            $0.store.register(
                .init(node: node, id: service, service: service, scope: scope, tags: tags, meta: [:], address: "", port: 0, kind: "", createIndex: 0, modifyIndex: 0),
                nodeMeta: ["external-node": "true", "external-probe": "true"]
            )
        }
    }

    public func deregisterInstance(_ service: String, node: String = "lambdas") {
        write { $0.store.deregister(node: node, serviceID: service) }
    }

    /// The catalog instances of a service: node, ID, tags.
    public func instances(of service: String, scope: ConsulScope = .default) -> [(node: String, id: String, tags: [String])] {
        state.withLockedValue { state in
            (state.store.instances[scope.qualified(service)] ?? []).map { ($0.node, $0.id, $0.tags) }
        }
    }

    /// The `NodeMeta` last registered for a node.
    public func nodeMeta(_ node: String) -> [String: String]? {
        state.withLockedValue { $0.store.nodeMeta[node] }
    }

    /// A config entry as it was written (without the server's indexes), as JSON text with sorted keys.
    public func configEntryJSON(kind: String, name: String, scope: ConsulScope = .default) -> String? {
        state.withLockedValue { state in
            state.store.entry(kind: kind, name: name, scope: scope).map { JSONValue.sortingKeys($0.value).jsonText }
        }
    }

    /// The `ModifyIndex` of a config entry.
    public func configEntryModifyIndex(kind: String, name: String, scope: ConsulScope = .default) -> UInt64? {
        state.withLockedValue { $0.store.entry(kind: kind, name: name, scope: scope)?.modifyIndex }
    }

    /// Creates a namespace in a partition (Enterprise).
    public func createNamespace(_ scope: ConsulScope) {
        _ = write { $0.store.createdNamespaces.insert(scope) }
    }

    /// Services registered through the agent endpoint: (ID, name, kind, address, port).
    public func agentServices() -> [(id: String, name: String, kind: String, address: String, port: Int)] {
        state.withLockedValue { state in
            state.store.instances.values.joined().filter { $0.node == "test-agent" }.map { ($0.id, $0.service, $0.kind, $0.address, $0.port) }.sorted { $0.id < $1.id }
        }
    }

    /// What an agent restarted without its data directory does: forgets a registered service.
    public func forgetAgentService(_ id: String) {
        write { $0.store.deregister(node: "test-agent", serviceID: id) }
    }

    /// Issues a new leaf for `service` (new serial, new `ModifyIndex`).
    public func rotateLeaf(_ service: String, scope: ConsulScope = .default) throws {
        let root = try activeRoot()
        let leaf = try issueLeaf(service, scope: scope, root: root)
        write { state in
            var leaf = leaf
            leaf.index = state.store.bump()
            state.store.leaves[scope.qualified(service)] = leaf
        }
    }

    /// A CA rotation step: adds a new active root; with `removeOld`, drops every other root. Every
    /// leaf is re-issued by the new root, as the agent does after a root change.
    public func rotateRoots(removeOld: Bool = false) throws {
        let ca = try TestCA(commonName: "Consul CA \(UUID().uuidString.prefix(8))")
        let id = SHA256.hash(data: Array(try ca.pem.utf8)).prefix(20).map { String(format: "%02x", $0) }.joined(separator: ":")
        let pem = try ca.pem
        let services = state.withLockedValue { $0.store.leaves.map { ($0.key, $0.value.service, $0.value.scope) } }
        let newRoot = ConsulTestStore.Root(id: id, ca: ca, pem: pem, index: 0)
        let leaves = try services.map { ($0.0, try issueLeaf($0.1, scope: $0.2, root: newRoot)) }
        write { state in
            let index = state.store.bump()
            state.store.rootsIndex = index
            if removeOld { state.store.roots.removeAll() }
            state.store.roots.append(ConsulTestStore.Root(id: id, ca: ca, pem: pem, index: index))
            state.store.activeRootID = id
            state.leafReadsSinceRotation = []
            for (service, leaf) in leaves {
                var leaf = leaf
                leaf.index = state.store.bump()
                state.store.leaves[service] = leaf
            }
        }
    }

    /// The last step of a CA rotation: drops every root but the active one, as Consul prunes the
    /// old root once the leaves it signed have been replaced. Leaves are left as they are
    /// (`rotateRoots` already re-issued them from the active root).
    public func pruneRoots() {
        write { state in
            let active = state.store.activeRootID
            let before = state.store.roots.count
            state.store.roots.removeAll { $0.id != active }
            if state.store.roots.count != before { state.store.rootsIndex = state.store.bump() }
        }
    }

    /// The active root CA, for tests that build clients trusted by the mesh.
    public var activeRootCA: TestCA {
        get throws { try activeRoot().ca }
    }

    func activeRoot() throws -> ConsulTestStore.Root {
        guard let root = state.withLockedValue({ state in state.store.roots.first { $0.id == state.store.activeRootID } }) else {
            throw TestSupportError("no active root")
        }
        return root
    }

    public func setDefaultACLPolicy(_ policy: String) {
        state.withLockedValue { $0.options.defaultACLPolicy = policy }
    }

    /// The agent's own default intention policy (`""`, `allow`, `deny`); `/v1/agent/self` is not blocking.
    public func setAgentDefaultIntentionPolicy(_ policy: String) {
        state.withLockedValue { $0.options.agentDefaultIntentionPolicy = policy }
    }

    /// Sets a token's rules in ACL mode (nil: the token becomes unknown). Wakes every long poll,
    /// as a policy change does in Consul.
    public func setTokenRules(_ token: String, _ rules: TokenRules?) {
        write { $0.options.tokens[token] = rules }
    }

    // MARK: Controls: faults

    /// `method`: only requests with this method (nil: any).
    public func inject(_ fault: Fault, count: Int = 1, pathPrefix: String, method: String? = nil) {
        state.withLockedValue { $0.faults.append((pathPrefix, count, fault, method)) }
    }

    /// ACL mode with one token: requests without it get `403 ACL not found` (a token rotated away).
    public func requireToken(_ token: String?) {
        write { $0.options.requiredToken = token }
    }

    /// The next answer carries `X-Consul-Index: index` (1 = backwards, 0 = the zero index).
    public func overrideNextIndex(_ index: UInt64) {
        state.withLockedValue { $0.indexOverride = index }
    }

    /// Churn: rewrites the service-defaults entry of `service` `perSecond` times a second
    /// for `duration`, each write a new `Meta.churn` value, so every write is a real change.
    /// Returns the number of writes made.
    @discardableResult
    public func churn(service: String, perSecond: Int, for duration: Duration) async -> Int {
        let interval = Duration.seconds(1) / perSecond
        let deadline = ContinuousClock.now + duration
        var writes = 0
        while ContinuousClock.now < deadline && !Task.isCancelled {
            writes += 1
            try? setConfigEntry(#"{"Kind":"service-defaults","Name":"\#(service)","Meta":{"churn":"\#(writes)"}}"#)
            try? await Task.sleep(for: interval)
        }
        return writes
    }

    /// Writes that touch nothing a watch reads but bump the config table (Consul wakes watches on them).
    public func touchConfigTable() {
        write { state in
            _ = state.store.putConfigEntry(.object([JSONMember("Kind", .string("proxy-defaults-noise")), JSONMember("Name", .string("n"))]), cas: nil)
        }
    }

    // MARK: Internals

    @discardableResult
    func write<T>(_ body: (inout State) -> T) -> T {
        let (result, waiters) = state.withLockedValue { state in
            let result = body(&state)
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return (result, waiters)
        }
        for waiter in waiters { waiter.resume() }
        return result
    }

    func wakeAll() {
        write { _ in () }
    }

    func issueLeaf(_ service: String, scope: ConsulScope = .default, root: ConsulTestStore.Root) throws -> ConsulTestStore.Leaf {
        try Self.issueLeaf(service, scope: scope, root: root, options: state.withLockedValue { $0.options })
    }

    /// The SPIFFE ID Consul signs into a service's leaf (see `SPIFFEID`).
    static func serviceURI(_ service: String, scope: ConsulScope, options: Options) -> String {
        SPIFFEID(trustDomain: options.trustDomain, partition: scope.partition, namespace: scope.namespace, datacenter: options.datacenter, service: service).description
    }

    /// Takes the options as a parameter: it is also called with the state lock held.
    static func issueLeaf(_ service: String, scope: ConsulScope = .default, root: ConsulTestStore.Root, options: Options) throws -> ConsulTestStore.Leaf {
        let now = Date()
        let uri = serviceURI(service, scope: scope, options: options)
        let validBefore = now.addingTimeInterval(options.leafLifetime)
        let leaf = try root.ca.issueLeaf(commonName: service, dnsNames: [], ipAddresses: [], uris: [uri], notValidBefore: now.addingTimeInterval(-60), notValidAfter: validBefore)
        return ConsulTestStore.Leaf(
            service: service,
            scope: scope,
            certificatePEM: try leaf.certificatePEM,
            keyPEM: leaf.keyPEM,
            serial: leaf.certificate.serialNumber.description,
            validAfter: now.addingTimeInterval(-60),
            validBefore: validBefore,
            index: 0
        )
    }

    /// Waits until the store moves past `observed` (any write), `deadline` passes, or the task is
    /// cancelled (the client went away).
    func waitForChange(after observed: UInt64, until deadline: ContinuousClock.Instant) async {
        let id = state.withLockedValue { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timer = Task {
            try? await Task.sleep(until: deadline)
            self.resumeWaiter(id)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = state.withLockedValue { state in
                    guard state.cancelledWaiters.remove(id) == nil, state.store.index == observed else { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            resumeWaiter(id, cancelled: true)
        }
    }

    private func resumeWaiter(_ id: UInt64, cancelled: Bool = false) {
        let waiter = state.withLockedValue { state in
            let waiter = state.waiters.removeValue(forKey: id)
            if waiter == nil && cancelled { state.cancelledWaiters.insert(id) }
            return waiter
        }
        waiter?.resume()
    }
}

/// Lets the HTTP handler reach the server without a retain cycle.
final class WeakBox: @unchecked Sendable {
    // @unchecked: set once in ConsulTestServer.init before any request can arrive, then only read.
    weak var server: ConsulTestServer?
}

extension JSONValue {
    /// The same value with every object's members in name order (for comparing JSON text).
    static func sortingKeys(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members): return .object(members.sorted { $0.name < $1.name }.map { JSONMember($0.name, sortingKeys($0.value)) })
        case .array(let elements): return .array(elements.map(sortingKeys))
        default: return value
        }
    }
}

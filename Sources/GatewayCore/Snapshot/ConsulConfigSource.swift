import ConsulAPI
import Foundation
import Logging
import NIOPosix

/// Follows Consul with the watch set of consul-api.md §4.1 and publishes a snapshot whenever what
/// is served changes. Errors never remove a served service: the last delivered values stay.
public final class ConsulConfigSource: Sendable {
    public struct Settings: Sendable {
        public var gatewayName: String
        public var datacenter: String?
        public var defaultIntentionPolicy: String?
        public var watchPolicy: BlockingQueryStateMachine.Policy
        /// Further changes within this time are folded into one snapshot (Decision, §4.3).
        public var coalescing: Duration

        public init(gatewayName: String, datacenter: String? = nil, defaultIntentionPolicy: String? = nil, watchPolicy: BlockingQueryStateMachine.Policy = .init(), coalescing: Duration = .milliseconds(100)) {
            self.gatewayName = gatewayName
            self.datacenter = datacenter
            self.defaultIntentionPolicy = defaultIntentionPolicy
            self.watchPolicy = watchPolicy
            self.coalescing = coalescing
        }
    }

    let client: ConsulClient
    let settings: Settings
    let store: SnapshotStore
    let metrics: GatewayMetrics
    let logger: Logger

    public init(client: ConsulClient, settings: Settings, store: SnapshotStore, metrics: GatewayMetrics = GatewayMetrics(), logger: Logger) {
        self.client = client
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    /// Runs the watches until the task is cancelled.
    public func run() async {
        let coordinator = WatchCoordinator(source: self)
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.globalWatch(.json("/v1/agent/connect/ca/roots"), coordinator) { (state, roots: CARoots) in state.roots = roots } }
                group.addTask { await self.globalWatch(.configEntry(kind: "mesh", name: "mesh"), coordinator) { (state, mesh: ConfigEntryAnswer<MeshConfig>) in state.mesh = mesh } }
                group.addTask {
                    await self.globalWatch(.configEntry(kind: "proxy-defaults", name: "global"), coordinator) { (state, defaults: ConfigEntryAnswer<ProxyDefaults>) in state.proxyDefaults = defaults }
                }
                group.addTask {
                    await self.globalWatch(.json("/v1/catalog/gateway-services/\(self.settings.gatewayName)"), coordinator) { (state, services: [GatewayService]) in
                        state.gatewayServices = services
                    }
                }
                group.addTask { await self.globalWatch(.json("/v1/catalog/services"), coordinator) { (state, services: CatalogServices) in state.catalogServices = services } }
                group.addTask { await self.globalWatch(.json("/v1/config/service-defaults"), coordinator) { (state, entries: [ServiceDefaults]) in state.serviceDefaults = entries } }
                group.addTask { await self.globalWatch(.json("/v1/config/service-resolver"), coordinator) { (state, entries: [ServiceResolver]) in state.serviceResolvers = entries } }
                group.addTask { await coordinator.publishLoop() }
                group.addTask { await coordinator.leafRenewalLoop() }
            }
        } onCancel: {
            Task { await coordinator.stopAll() }
        }
        await coordinator.stopAll()
    }

    private func globalWatch<Value>(
        _ endpoint: WatchEndpoint<Value>,
        _ coordinator: WatchCoordinator,
        apply: @escaping @Sendable (inout ConsulState, Value) -> Void
    ) async {
        await client.watch(endpoint, policy: settings.watchPolicy, onError: { error in
            self.metrics.consulWatchFailed(endpoint.path)
            self.logger.warning("consul watch failed; keeping the last answer", metadata: ["endpoint": "\(error.endpoint)", "error": "\(error.message)"])
        }) { value, metadata in
            await coordinator.update(metadata: metadata) { apply(&$0, value) }
        }
    }
}

/// Owns the watch state, the per-service watches and publishing. An actor: watches deliver from many tasks.
actor WatchCoordinator {
    let source: ConsulConfigSource
    var state = ConsulState()
    var leafWatches: [String: Task<Void, Never>] = [:]
    var intentionsWatch: (names: [String], task: Task<Void, Never>)?
    var rootIDs: Set<String> = []
    var lastLeafRestart: [String: ContinuousClock.Instant] = [:]
    var dirty = false
    var wake: CheckedContinuation<Void, Never>?
    var version: UInt64 = 0
    var stopped = false

    init(source: ConsulConfigSource) {
        self.source = source
        state.datacenterOverride = source.settings.datacenter
        state.defaultACLPolicy = source.settings.defaultIntentionPolicy
    }

    func update(metadata: ConsulMetadata, _ change: (inout ConsulState) -> Void) {
        guard !stopped else { return }
        change(&state)
        if source.settings.defaultIntentionPolicy == nil, let policy = metadata.defaultACLPolicy, ["allow", "deny"].contains(policy) {
            state.defaultACLPolicy = policy
        }
        reconcileWatches()
        dirty = true
        wake?.resume()
        wake = nil
    }

    /// Starts and stops the leaf watches and restarts the intentions watch when the linked set or the roots change.
    func reconcileWatches() {
        let linked = Set(state.linkedServices)
        let currentRoots = Set(state.roots?.Roots.map(\.ID) ?? [])
        if !rootIDs.isEmpty, currentRoots != rootIDs {
            // New roots: every leaf is fetched again at once, without waiting for the agent (§3.6).
            source.logger.info("CA roots changed; revalidating every leaf")
            for (service, task) in leafWatches {
                task.cancel()
                leafWatches[service] = nil
            }
        }
        rootIDs = currentRoots
        for (service, task) in leafWatches where !linked.contains(service) {
            task.cancel()
            leafWatches[service] = nil
            state.leaves[service] = nil
        }
        for service in linked.sorted() where leafWatches[service] == nil {
            startLeafWatch(service)
        }
        let names = linked.sorted()
        if intentionsWatch?.names != names {
            // The previous answer stays valid for the names it covered until the new one arrives,
            // so served services are not dropped while the watch restarts.
            intentionsWatch?.task.cancel()
            state.intentionNames.formIntersection(linked)
            intentionsWatch = names.isEmpty ? nil : (names, startIntentionsWatch(names))
        }
    }

    func startLeafWatch(_ service: String) {
        let source = self.source
        lastLeafRestart[service] = .now
        leafWatches[service] = Task {
            await source.client.watch(WatchEndpoint<LeafCertificate>.json("/v1/agent/connect/ca/leaf/\(service)"), policy: source.settings.watchPolicy, onError: { error in
                source.metrics.consulWatchFailed("/v1/agent/connect/ca/leaf")
                source.logger.warning("leaf watch failed; keeping the last leaf", metadata: ["service": "\(service)", "error": "\(error.message)"])
            }) { leaf, metadata in
                await self.update(metadata: metadata) { state in
                    guard leaf.Service == service || leaf.ServiceURI.hasSuffix("/svc/\(service)") else { return }
                    state.leaves[service] = leaf
                }
            }
        }
    }

    func startIntentionsWatch(_ names: [String]) -> Task<Void, Never> {
        let source = self.source
        let query = [("by", "destination")] + names.map { ("name", $0) }
        return Task {
            await source.client.watch(WatchEndpoint<IntentionMatches>.json("/v1/connect/intentions/match", query: query), policy: source.settings.watchPolicy, onError: { error in
                source.metrics.consulWatchFailed("/v1/connect/intentions/match")
                source.logger.warning("intentions watch failed; keeping the last answer", metadata: ["error": "\(error.message)"])
            }) { matches, metadata in
                await self.update(metadata: metadata) { state in
                    state.intentions = matches
                    state.intentionNames = Set(names)
                }
            }
        }
    }

    /// Waits for changes, folds them for the coalescing time, and publishes when what is served changed.
    func publishLoop() async {
        while !Task.isCancelled && !stopped {
            if !dirty {
                await withCheckedContinuation { wake = $0 }
                continue
            }
            try? await Task.sleep(for: source.settings.coalescing)
            dirty = false
            let current = source.store.snapshot
            // Off the event loops, which also run Swift concurrency in `run`: with thousands of
            // services a build takes tens of milliseconds (BENCHMARKS.md, micro benchmarks).
            let (state, nextVersion) = (self.state, self.version + 1)
            let build: @Sendable () -> GatewaySnapshot = { SnapshotBuilder.build(from: state, version: nextVersion, now: Date()) }
            let next = (try? await NIOThreadPool.singleton.runIfActive(build)) ?? build()
            guard !next.hasSameContent(as: current) else { continue }
            version += 1
            logChanges(from: current, to: next)
            source.store.publish(next)
        }
    }

    /// Restarts a leaf watch with index 0 when the leaf is at 95 % of its life or has under 1 h left
    /// and no newer leaf came (§3.6), at most once per 5 minutes per service.
    func leafRenewalLoop() async {
        while !Task.isCancelled && !stopped {
            try? await Task.sleep(for: .seconds(30))
            let now = Date()
            for (service, leaf) in state.leaves {
                guard let after = leaf.validAfter, let before = leaf.validBefore else { continue }
                let lifetime = before.timeIntervalSince(after)
                let stale = now >= after.addingTimeInterval(lifetime * 0.95) || before.timeIntervalSince(now) < 3600
                guard stale, let last = lastLeafRestart[service], ContinuousClock.now - last > .seconds(300) else { continue }
                source.logger.info("leaf near expiry; fetching it again", metadata: ["service": "\(service)"])
                leafWatches[service]?.cancel()
                startLeafWatch(service)
            }
        }
    }

    func stopAll() {
        stopped = true
        for task in leafWatches.values { task.cancel() }
        leafWatches = [:]
        intentionsWatch?.task.cancel()
        intentionsWatch = nil
        wake?.resume()
        wake = nil
    }

    func logChanges(from old: GatewaySnapshot, to new: GatewaySnapshot) {
        for name in Set(old.services.keys).union(new.services.keys).sorted() {
            switch (old.services[name] != nil, new.services[name] != nil) {
            case (false, true): source.logger.info("service served", metadata: ["service": "\(name)", "snis": "\(new.services[name]!.snis)"])
            case (true, false) where new.notServed[name] == nil:
                source.logger.info("service not served", metadata: ["service": "\(name)", "reason": "unlinked"])
            default: break
            }
        }
        for (name, reason) in new.notServed where old.notServed[name] != reason {
            source.logger.info("service not served", metadata: ["service": "\(name)", "reason": "\(reason)"])
        }
        for warning in new.configurationWarnings where !old.configurationWarnings.contains(warning) {
            source.logger.warning("\(warning)")
        }
        if new.incomingTLS != old.incomingTLS {
            let tls = new.incomingTLS
            source.logger.info("mesh listener TLS changed; new handshakes use it", metadata: ["min": "\(tls.minimumVersion)", "max": "\(tls.maximumVersion)", "cipherSuites": "\(tls.cipherSuites)"])
        }
    }
}

extension GatewaySnapshot {
    /// Equal in everything a connection or request could observe (version and time aside).
    func hasSameContent(as other: GatewaySnapshot) -> Bool {
        trustDomain == other.trustDomain && datacenter == other.datacenter && rootPEMs == other.rootPEMs
            && activeRootID == other.activeRootID && defaultIntentionPolicy == other.defaultIntentionPolicy
            && services == other.services && sniTable == other.sniTable && notServed == other.notServed
            && sanitizeXFCC == other.sanitizeXFCC && incomingTLS == other.incomingTLS
    }
}

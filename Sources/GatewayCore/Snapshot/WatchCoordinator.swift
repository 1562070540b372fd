import ConsulAPI
import Foundation
import Logging
import MeshIdentity
import NIOPosix

/// Owns the watch state, the per-service watches and publishing. An actor: watches deliver from many tasks.
actor WatchCoordinator {
    let source: ConsulConfigSource
    var state = ConsulState()
    /// One leaf watch per linked service, by key.
    var leafWatches: [String: (service: LinkedService, task: Task<Void, Never>)] = [:]
    /// The catalog, service-defaults and service-resolver list watches of each scope in use.
    var scopedWatches: [ConsulScope: [Task<Void, Never>]] = [:]
    var intentionsWatches: [ConsulScope: IntentionsWatches] = [:]
    var rootIDs: Set<String> = []
    var lastLeafRestart: [String: ContinuousClock.Instant] = [:]
    var dirty = false
    var wake: CheckedContinuation<Void, Never>?
    var version: UInt64 = 0
    var stopped = false

    init(source: ConsulConfigSource) {
        self.source = source
        state.datacenterOverride = source.settings.datacenter
        state.defaultPolicyOverride = source.settings.defaultIntentionPolicy
    }

    func update(metadata: ConsulMetadata, _ change: (inout ConsulState) -> Void) {
        guard !stopped else { return }
        let (linkedBefore, rootsBefore) = (state.gatewayServices, state.roots)
        change(&state)
        if let policy = Self.intentionPolicy(metadata.defaultACLPolicy) {
            state.headerDefaultPolicy = policy
        }
        // Only the linked set and the roots decide which watches run. Checking on every answer
        // would cost a pass over all services per answer: quadratic while 10,000 leaves arrive.
        // (An unchanged array compares by its shared storage, at once.)
        if state.gatewayServices != linkedBefore || state.roots != rootsBefore {
            reconcileWatches()
        }
        dirty = true
        wake?.resume()
        wake = nil
    }

    /// Follows the linked set and the roots: a leaf watch per service, the list watches and the
    /// intentions watch per scope in use (consul-api.md §4.4), every leaf fetched again on new roots.
    func reconcileWatches() {
        let linked = state.linkedServices
        let keys = Set(linked.map(\.key))
        let currentRoots = Set(state.roots?.Roots.map(\.ID) ?? [])
        if !rootIDs.isEmpty, currentRoots != rootIDs {
            // New roots: every leaf is fetched again at once, without waiting for the agent (§3.6).
            source.logger.info("CA roots changed; revalidating every leaf")
            for (key, watch) in leafWatches {
                watch.task.cancel()
                leafWatches[key] = nil
            }
        }
        rootIDs = currentRoots
        for (key, watch) in leafWatches where !keys.contains(key) {
            watch.task.cancel()
            leafWatches[key] = nil
            lastLeafRestart[key] = nil
            state.leaves[key] = nil
        }
        for service in linked where leafWatches[service.key] == nil {
            startLeafWatch(service)
        }

        let byScope = Dictionary(grouping: linked, by: \.scope)
        for (scope, tasks) in scopedWatches where byScope[scope] == nil {
            // A scope nothing is linked in any more: its watches and what they delivered go.
            tasks.forEach { $0.cancel() }
            scopedWatches[scope] = nil
            stopIntentionsWatches(scope)
            state.catalogServices[scope] = nil
            state.serviceDefaults[scope] = nil
            state.serviceResolvers[scope] = nil
        }
        for scope in byScope.keys.sorted() where scopedWatches[scope] == nil {
            startScopedWatches(scope)
        }
        state.intentions = state.intentions.filter { keys.contains($0.key) }
        state.intentionRefusals = state.intentionRefusals.filter { keys.contains($0.key) }
        for (scope, services) in byScope {
            reconcileIntentionsWatches(scope, names: services.map(\.name).sorted())
        }
    }

    /// G5–G7 of §4.1 for one scope.
    func startScopedWatches(_ scope: ConsulScope) {
        scopedWatches[scope] = [
            scopedWatch(.json("/v1/catalog/services", scope: scope), scope) { (state, services: CatalogServices) in state.catalogServices[scope] = services },
            scopedWatch(.json("/v1/config/service-defaults", scope: scope), scope) { (state, entries: [ServiceDefaults]) in state.serviceDefaults[scope] = entries },
            scopedWatch(.json("/v1/config/service-resolver", scope: scope), scope) { (state, entries: [ServiceResolver]) in state.serviceResolvers[scope] = entries },
        ]
    }

    func scopedWatch<Value>(
        _ endpoint: WatchEndpoint<Value>,
        _ scope: ConsulScope,
        apply: @escaping @Sendable (inout ConsulState, Value) -> Void
    ) -> Task<Void, Never> {
        let source = self.source
        return Task {
            await source.client.watch(endpoint, policy: source.settings.watchPolicy, onError: { error in
                source.metrics.consulWatchFailed(endpoint.path)
                source.logger.warning("consul watch failed; keeping the last answer", metadata: ["endpoint": "\(error.endpoint)", "error": "\(error.message)"])
            }) { value, metadata in
                await self.scopedAnswer(scope, metadata: metadata) { apply(&$0, value) }
            }
        }
    }

    /// An answer of a scope's watch, unless the scope went out of use meanwhile.
    func scopedAnswer(_ scope: ConsulScope, metadata: ConsulMetadata, _ change: (inout ConsulState) -> Void) {
        guard scopedWatches[scope] != nil else { return }
        update(metadata: metadata, change)
    }

    /// The agent's own default intention policy; `nil` when it has none or may not be read.
    func agentPolicyRead(_ policy: String?, metadata: ConsulMetadata) {
        update(metadata: metadata) { $0.agentDefaultPolicy = Self.intentionPolicy(policy) }
    }

    static func intentionPolicy(_ text: String?) -> String? {
        guard let policy = text?.lowercased(), policy == "allow" || policy == "deny" else { return nil }
        return policy
    }

    func startLeafWatch(_ service: LinkedService) {
        let source = self.source
        let key = service.key
        lastLeafRestart[key] = .now
        let endpoint = WatchEndpoint<LeafCertificate>.json("/v1/agent/connect/ca/leaf/\(service.name)", scope: service.scope)
        let task = Task {
            await source.client.watch(endpoint, policy: source.settings.watchPolicy, onError: { error in
                source.metrics.consulWatchFailed("/v1/agent/connect/ca/leaf")
                source.logger.warning("leaf watch failed; keeping the last leaf", metadata: ["service": "\(key)", "error": "\(error.message)"])
            }) { leaf, metadata in
                guard leaf.Service == service.name || SPIFFEID(parsing: leaf.ServiceURI)?.service == service.name else { return }
                await self.leafAnswered(key, leaf, metadata: metadata)
            }
        }
        leafWatches[key] = (service, task)
    }

    /// A leaf, unless its service was unlinked meanwhile.
    func leafAnswered(_ key: String, _ leaf: LeafCertificate, metadata: ConsulMetadata) {
        guard leafWatches[key] != nil else { return }
        update(metadata: metadata) { $0.leaves[key] = leaf }
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
            for (key, leaf) in state.leaves {
                guard let after = leaf.validAfter, let before = leaf.validBefore, let watch = leafWatches[key] else { continue }
                let lifetime = before.timeIntervalSince(after)
                let stale = now >= after.addingTimeInterval(lifetime * 0.95) || before.timeIntervalSince(now) < 3600
                guard stale, let last = lastLeafRestart[key], ContinuousClock.now - last > .seconds(300) else { continue }
                source.logger.info("leaf near expiry; fetching it again", metadata: ["service": "\(key)"])
                watch.task.cancel()
                startLeafWatch(watch.service)
            }
        }
    }

    func stopAll() {
        stopped = true
        for watch in leafWatches.values { watch.task.cancel() }
        leafWatches = [:]
        for tasks in scopedWatches.values { tasks.forEach { $0.cancel() } }
        scopedWatches = [:]
        for scope in intentionsWatches.keys { intentionsWatches[scope]?.cancelAll() }
        intentionsWatches = [:]
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
            source.logger.info("service not served", metadata: ["service": "\(name)", "reason": "\(reason.text)", "kind": "\(reason.kind.rawValue)"])
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


import ConsulAPI
import Foundation
import Logging
import NIOPosix

/// Owns the watch state, the per-service watches and publishing. An actor: watches deliver from many tasks.
actor WatchCoordinator {
    let source: ConsulConfigSource
    var state = ConsulState()
    var leafWatches: [String: Task<Void, Never>] = [:]
    var intentionsWatches = IntentionsWatches()
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
        change(&state)
        if let policy = Self.intentionPolicy(metadata.defaultACLPolicy) {
            state.headerDefaultPolicy = policy
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
        reconcileIntentionsWatches(linked)
    }

    /// The agent's own default intention policy; `nil` when it has none or may not be read.
    func agentPolicyRead(_ policy: String?, metadata: ConsulMetadata) {
        update(metadata: metadata) { $0.agentDefaultPolicy = Self.intentionPolicy(policy) }
    }

    static func intentionPolicy(_ text: String?) -> String? {
        guard let policy = text?.lowercased(), policy == "allow" || policy == "deny" else { return nil }
        return policy
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
        intentionsWatches.cancelAll()
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


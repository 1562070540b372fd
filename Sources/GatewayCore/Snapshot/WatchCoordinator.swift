import ConsulAPI
import Foundation
import Logging
import MeshIdentity
import NIOPosix

/// Owns the watch state, the per-service watches and publishing. An actor: watches deliver from many tasks.
actor WatchCoordinator {
    let source: ConsulConfigSource
    var state = ConsulState()
    /// When each linked service's leaf is read (no watch per service: docs/DECISIONS.md D36).
    var leafSchedule: LeafSchedule
    /// Resumes the leaf reader when the schedule may have something to start.
    var leafWake: CheckedContinuation<Void, Never>?
    let leafFailureLog: RateLimitedLog
    /// The catalog, service-defaults and service-resolver list watches of each scope in use.
    var scopedWatches: [ConsulScope: [WatchTasks.Handle]] = [:]
    /// Every watch started as the linked set changes, as child tasks of the source's task group.
    let tasks = WatchTasks()
    var intentionsWatches: [ConsulScope: IntentionsWatches] = [:]
    var rootIDs: Set<String> = []
    var activeRootID: String?
    var warnedLongPolls: Int?
    /// When the next snapshot is built.
    var publishSchedule: PublishSchedule
    /// Resumes the publish loop when it waits for a change.
    var wake: CheckedContinuation<Void, Never>?
    var version: UInt64 = 0
    var stopped = false
    /// The last build's per-service results, reused while their inputs do not change.
    var buildCache = SnapshotBuildCache()

    init(source: ConsulConfigSource) {
        self.source = source
        leafSchedule = LeafSchedule(policy: source.settings.leafReads)
        publishSchedule = PublishSchedule(coalescing: source.settings.coalescing, settle: Self.settle)
        leafFailureLog = RateLimitedLog("reading a leaf failed; keeping the last leaf", level: .warning, logger: source.logger)
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
        publishSchedule.changed(at: .now)
        wake?.resume()
        wake = nil
    }

    /// Follows the linked set and the roots: each linked service on the leaf schedule, the list
    /// watches and the intentions watch per scope in use (docs/ARCHITECTURE.md, Configuration: the snapshot flow), every leaf read
    /// again on new roots.
    func reconcileWatches() {
        let linked = state.linkedServices
        let keys = Set(linked.map(\.key))
        let currentRoots = Set(state.roots?.Roots.map(\.ID) ?? [])
        let currentActive = state.roots?.ActiveRootID
        if !rootIDs.isEmpty, currentRoots != rootIDs {
            // New roots: every leaf is read again at once, without waiting for the agent (docs/DECISIONS.md D36). A
            // new active root re-signs every leaf: a read that still returns the old one is repeated.
            source.logger.info("CA roots changed; revalidating every leaf", metadata: ["services": "\(leafSchedule.count)"])
            let held = currentActive != activeRootID ? state.leaves.mapValues(\.SerialNumber) : nil
            leafSchedule.rootsChanged(now: .now, heldSerials: held)
        }
        rootIDs = currentRoots
        activeRootID = currentActive
        for key in leafSchedule.keys where !keys.contains(key) {
            leafSchedule.unlink(key)
            state.leaves[key] = nil
        }
        let now = ContinuousClock.now
        for service in linked where !leafSchedule.isScheduled(service.key) {
            leafSchedule.link(service, now: now)
        }
        wakeLeafReader()

        let byScope = Dictionary(grouping: linked, by: \.scope)
        for (scope, handles) in scopedWatches where byScope[scope] == nil {
            // A scope nothing is linked in any more: its watches and what they delivered go.
            for handle in handles { tasks.stop(handle) }
            scopedWatches[scope] = nil
            stopIntentionsWatches(scope)
            state.catalogServices[scope] = nil
            state.serviceDefaults[scope] = nil
            state.serviceResolvers[scope] = nil
        }
        for scope in byScope.keys.sorted() where scopedWatches[scope] == nil {
            startScopedWatches(scope)
        }
        checkConnectionBudget()
        state.intentions = state.intentions.filter { keys.contains($0.key) }
        state.intentionRefusals = state.intentionRefusals.filter { keys.contains($0.key) }
        for (scope, services) in byScope {
            reconcileIntentionsWatches(scope, names: services.map(\.name).sorted())
        }
    }

    /// Over plain HTTP each long poll holds one of the budget's connections for its whole wait (over
    /// HTTPS they share one HTTP/2 connection). Requests over the budget queue: if the long polls
    /// leave no room for the leaf reads, leaves wait for a poll to end. Said once per count.
    func checkConnectionBudget() {
        let configuration = source.client.configuration
        guard configuration.transport != .https else { return }
        let longPolls = 4 + 4 * scopedWatches.count
        let needed = longPolls + leafSchedule.policy.concurrency + 1
        guard needed > configuration.maximumConnections, warnedLongPolls != longPolls else { return }
        warnedLongPolls = longPolls
        source.logger.warning(
            "the Consul connection budget is too small for the namespaces in use: leaf reads will wait for long polls to end",
            metadata: ["longPolls": "\(longPolls)", "needed": "\(needed)", "budget": "\(configuration.maximumConnections)", "fix": "raise --consul-max-connections or use HTTPS (HTTP/2)"]
        )
    }

    /// The catalog, service-defaults and service-resolver list watches of one scope (docs/DECISIONS.md D35).
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
    ) -> WatchTasks.Handle {
        let source = self.source
        return tasks.start { _ in
            await source.watch(
                endpoint, label: endpoint.path,
                onError: { error in
                    source.logger.warning("consul watch failed; keeping the last answer", metadata: ["endpoint": "\(error.endpoint)", "error": "\(error.message)"])
                }
            ) { value, metadata in
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

    static func intentionPolicy(_ text: String?) -> IntentionAction? {
        text.flatMap(IntentionAction.init(consul:))
    }

    /// Starts the reads the schedule allows, a few at a time, until the source stops.
    func leafReadLoop() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled && !stopped {
                switch leafSchedule.next(now: .now) {
                case .read(let service):
                    group.addTask { await self.readLeaf(service) }
                case .wait(let until):
                    await waitForLeafEvent(deadline: until)
                case .idle:
                    await waitForLeafEvent(deadline: nil)
                }
            }
        }
    }

    /// Sleeps until `deadline` (`nil`: none) or until an event wakes the reader (`wakeLeafReader`).
    func waitForLeafEvent(deadline: ContinuousClock.Instant?) async {
        guard let deadline else {
            await withCheckedContinuation { leafWake = $0 }
            return
        }
        // The timer is a child task of this wait: cancelled when another event came first, and
        // awaited before the wait returns, so it can never wake a later wait (which once made a
        // loop that spun a core).
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
                await self.wakeLeafReader()
            }
            await withCheckedContinuation { leafWake = $0 }
            group.cancelAll()
        }
    }

    func wakeLeafReader() {
        leafWake?.resume()
        leafWake = nil
    }

    /// One leaf read without blocking: the agent answers from its cache (docs/DECISIONS.md D36).
    nonisolated func readLeaf(_ service: LinkedService) async {
        let path = "/v1/agent/connect/ca/leaf/\(service.name)"
        do throws(ConsulError) {
            let response = try await source.client.send(.GET, path, scope: service.scope)
            let leaf = try ConsulClient.decode(LeafCertificate.self, response.body, endpoint: path)
            // A leaf for another service is an error for this answer (docs/ARCHITECTURE.md, Configuration: the snapshot flow).
            guard leaf.Service == service.name || SPIFFEID(parsing: leaf.ServiceURI)?.service == service.name else {
                throw ConsulError(.malformedBody, endpoint: path, "the leaf is for \(leaf.ServiceURI), not \(service.name)")
            }
            await leafRead(service.key, leaf, metadata: response.metadata)
        } catch {
            source.metrics.consulWatchFailed("/v1/agent/connect/ca/leaf")
            leafFailureLog.record(
                sample: "\(service.key): \(error.message)",
                metadata: ["service": "\(service.key)", "error": "\(error.message)"],
                on: MultiThreadedEventLoopGroup.singleton.any()
            )
            await leafReadFailed(service.key, error)
        }
    }

    /// A leaf, unless its service was unlinked meanwhile. An unchanged leaf changes nothing: the
    /// reads of 10,000 leaves every few minutes must not rebuild the snapshot each time.
    func leafRead(_ key: String, _ leaf: LeafCertificate, metadata: ConsulMetadata) {
        defer { wakeLeafReader() }
        guard leafSchedule.isScheduled(key) else { return }
        leafSchedule.answered(key, serial: leaf.SerialNumber, now: .now)
        let policy = Self.intentionPolicy(metadata.defaultACLPolicy)
        guard state.leaves[key] != leaf || (policy != nil && policy != state.headerDefaultPolicy) else { return }
        update(metadata: metadata) { $0.leaves[key] = leaf }
    }

    func leafReadFailed(_ key: String, _ error: ConsulError) {
        leafSchedule.failed(key, now: .now, retryAfter: error.retryAfter)
        wakeLeafReader()
    }

    /// Builds and publishes when what is served changed, when `publishSchedule` says so.
    func publishLoop() async {
        while !Task.isCancelled && !stopped {
            switch publishSchedule.next(now: .now) {
            case .waitForChange:
                await withCheckedContinuation { wake = $0 }
            case .sleep(let until):
                // The schedule's own timer: changes meanwhile are built when it ends.
                try? await Task.sleep(until: until)
            case .build:
                await buildAndPublish()
                publishSchedule.built(now: .now)
            }
        }
    }

    /// Builds a snapshot from the state, and publishes it unless nothing served changed.
    func buildAndPublish() async {
        let current = source.store.snapshot
        // Off the event loops, which also run Swift concurrency in `run`: with thousands of
        // services a build takes tens of milliseconds (BENCHMARKS.md, micro benchmarks).
        let (state, nextVersion, cache) = (self.state, self.version + 1, self.buildCache)
        let build: @Sendable () -> (GatewaySnapshot, SnapshotBuildCache) = {
            var cache = cache
            return (SnapshotBuilder.build(from: state, version: nextVersion, now: Date(), cache: &cache), cache)
        }
        let (next, nextCache) = (try? await NIOThreadPool.singleton.runIfActive(build)) ?? build()
        buildCache = nextCache
        guard !next.hasSameContent(as: current) else { return }
        version += 1
        logChanges(from: current, to: next)
        source.store.publish(next)
    }

    /// How long a change after a quiet spell waits for the answers that come with it.
    static let settle = Duration.milliseconds(5)

    func stopAll() {
        stopped = true
        wakeLeafReader()
        for handles in scopedWatches.values {
            for handle in handles { tasks.stop(handle) }
        }
        scopedWatches = [:]
        for scope in intentionsWatches.keys { intentionsWatches[scope]?.stopAll(tasks) }
        intentionsWatches = [:]
        wake?.resume()
        wake = nil
    }

    func logChanges(from old: GatewaySnapshot, to new: GatewaySnapshot) {
        // Lookups, and a sort of what changed only: at 10,000 services a sorted union of every name
        // per publish cost more than the change it logs.
        for name in new.services.keys.filter({ old.services[$0] == nil }).sorted() {
            source.logger.info("service served", metadata: ["service": "\(name)", "snis": "\(new.services[name]!.snis)"])
        }
        for name in old.services.keys.filter({ new.services[$0] == nil && new.notServed[$0] == nil }).sorted() {
            source.logger.info("service not served", metadata: ["service": "\(name)", "reason": "unlinked"])
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

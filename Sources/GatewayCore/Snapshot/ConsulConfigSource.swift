import ConsulAPI
import Foundation
import Logging
import MeshIdentity
import NIOPosix

/// Follows Consul with the watch set of docs/ARCHITECTURE.md (Configuration: the snapshot flow) and publishes a snapshot whenever what
/// is served changes. Errors never remove a served service: the last delivered values stay.
public final class ConsulConfigSource: Sendable {
    public struct Settings: Sendable {
        public var gatewayName: String
        public var datacenter: String?
        public var defaultIntentionPolicy: IntentionAction?
        public var watchPolicy: BlockingQueryStateMachine.Policy
        /// Further changes within this time are folded into one snapshot (docs/ARCHITECTURE.md, Configuration: the snapshot flow).
        public var coalescing: Duration
        /// How often the agent's own default intention policy is read again (docs/DECISIONS.md D38).
        public var agentSelfInterval: Duration
        /// After the batched intentions query was refused, how long the per-service form runs
        /// before the batched one is tried again (docs/DECISIONS.md D37).
        public var intentionsBatchRetry: Duration
        /// When leaves are read (docs/DECISIONS.md D36).
        public var leafReads: LeafReadPolicy

        public init(
            gatewayName: String,
            datacenter: String? = nil,
            defaultIntentionPolicy: IntentionAction? = nil,
            watchPolicy: BlockingQueryStateMachine.Policy = .init(),
            coalescing: Duration = .milliseconds(100),
            agentSelfInterval: Duration = .seconds(300),
            intentionsBatchRetry: Duration = .seconds(600),
            leafReads: LeafReadPolicy = LeafReadPolicy()
        ) {
            self.leafReads = leafReads
            self.gatewayName = gatewayName
            self.datacenter = datacenter
            self.defaultIntentionPolicy = defaultIntentionPolicy
            self.watchPolicy = watchPolicy
            self.coalescing = coalescing
            self.agentSelfInterval = agentSelfInterval
            self.intentionsBatchRetry = intentionsBatchRetry
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
                group.addTask { await self.agentPolicyLoop(coordinator) }
                group.addTask { await coordinator.publishLoop() }
                group.addTask { await coordinator.leafReadLoop() }
                group.addTask { await coordinator.tasks.run() }
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
        await self.watch(
            endpoint, label: endpoint.path,
            onError: { error in
                self.logger.warning("consul watch failed; keeping the last answer", metadata: ["endpoint": "\(error.endpoint)", "error": "\(error.message)"])
            }
        ) { value, metadata in
            await coordinator.update(metadata: metadata) { apply(&$0, value) }
        }
    }

    /// `client.watch` with the gateway's bookkeeping: a failure counted under `label` (an endpoint
    /// without per-service parts) before `onError` runs, and every answer noted for the watch's
    /// freshness (`lambda_gateway_consul_watch_staleness_seconds`).
    func watch<Value>(
        _ endpoint: WatchEndpoint<Value>,
        label: String,
        onError: @escaping @Sendable (ConsulError) -> Void,
        onChange: @escaping @Sendable (Value, ConsulMetadata) async -> Void
    ) async {
        let freshness = metrics.consulWatches.started(label)
        defer { freshness.ended() }
        await client.watch(
            endpoint, policy: settings.watchPolicy,
            onError: { error in
                self.metrics.consulWatchFailed(label)
                if error.isPermissionDenied { freshness.refused() }
                onError(error)
            },
            onAnswer: { freshness.answered() },
            onChange: onChange
        )
    }

    /// The agent's `DebugConfig.DefaultIntentionPolicy`, the second source of the default intention
    /// policy (docs/DECISIONS.md D38): read at start and every `agentSelfInterval`. A 403 (the token lacks
    /// `agent:read`) turns the source off and the `X-Consul-Default-ACL-Policy` header decides.
    private func agentPolicyLoop(_ coordinator: WatchCoordinator) async {
        guard settings.defaultIntentionPolicy == nil else { return }
        while !Task.isCancelled {
            do throws(ConsulError) {
                let (agent, metadata) = try await client.get(AgentSelf.self, "/v1/agent/self")
                await coordinator.agentPolicyRead(agent.DebugConfig?.DefaultIntentionPolicy, metadata: metadata)
            } catch {
                guard !Task.isCancelled else { return }
                if error.code == .status(403) {
                    logger.notice(
                        "the agent's default intention policy is not readable; X-Consul-Default-ACL-Policy decides",
                        metadata: ["endpoint": "\(error.endpoint)", "error": "\(error.message)"]
                    )
                    await coordinator.agentPolicyRead(nil, metadata: ConsulMetadata())
                    return
                }
                metrics.consulWatchFailed("/v1/agent/self")
                logger.warning("reading the agent's configuration failed; keeping the last answer", metadata: ["error": "\(error.message)"])
            }
            try? await Task.sleep(for: settings.agentSelfInterval)
        }
    }
}

extension GatewaySnapshot {
    /// Equal in everything a connection or request could observe (version and time aside).
    func hasSameContent(as other: GatewaySnapshot) -> Bool {
        trustDomain == other.trustDomain && datacenter == other.datacenter && rootPEMs == other.rootPEMs
            && activeRootID == other.activeRootID && defaultIntentionPolicy == other.defaultIntentionPolicy
            && services == other.services && sniTable == other.sniTable && notServed == other.notServed
            && sanitizeXFCC == other.sanitizeXFCC && incomingTLS == other.incomingTLS && accessLogs == other.accessLogs
    }
}

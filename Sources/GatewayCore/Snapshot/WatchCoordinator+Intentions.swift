import ConsulAPI
import Logging

/// The intentions match watch, G8 of consul-api.md §4.1.
///
/// Normally one batched request names every linked service. Consul refuses the whole batch with
/// 403 when the token may not read the intentions of even one of them, so on a refusal the watch
/// splits into one request per service: the missing permission then costs only that service. The
/// batched form is tried again after `intentionsBatchRetry`, while the per-service watches go on
/// (Decision, §4.1).
struct IntentionsWatches {
    enum Mode {
        case batched
        /// One watch per linked name; `retry` waits to try the batched form again.
        case split(single: [String: Task<Void, Never>], retry: Task<Void, Never>?)
    }

    /// The linked names, sorted: what the watches are asked for.
    var names: [String] = []
    var mode = Mode.batched
    /// The batched watch: the only one in batched mode, a retry of the batched form in split mode.
    var batched: (generation: UInt64, task: Task<Void, Never>)?
    /// Tells a batched watch's late callbacks from the current one's.
    var generation: UInt64 = 0

    mutating func cancelAll() {
        batched?.task.cancel()
        batched = nil
        if case .split(let single, let retry) = mode {
            for task in single.values { task.cancel() }
            retry?.cancel()
        }
        mode = .batched
    }
}

extension WatchCoordinator {
    static let intentionsPath = "/v1/connect/intentions/match"

    /// Follows the linked set. The answers so far stay valid for the names they covered until new
    /// ones arrive, so served services are not dropped while a watch restarts.
    func reconcileIntentionsWatches(_ linked: Set<String>) {
        let names = linked.sorted()
        guard intentionsWatches.names != names else { return }
        intentionsWatches.names = names
        state.intentionNames.formIntersection(linked)
        state.intentionRefusals = state.intentionRefusals.filter { linked.contains($0.key) }
        switch intentionsWatches.mode {
        case .batched:
            startBatchedIntentionsWatch()
        case .split(var single, let retry):
            for (name, task) in single where !linked.contains(name) {
                task.cancel()
                single[name] = nil
            }
            for name in names where single[name] == nil {
                single[name] = startSingleIntentionsWatch(name)
            }
            intentionsWatches.mode = .split(single: single, retry: retry)
            // A retry of the batched form under way asks for the new names.
            if intentionsWatches.batched != nil { startBatchedIntentionsWatch() }
        }
    }

    func startBatchedIntentionsWatch() {
        intentionsWatches.batched?.task.cancel()
        intentionsWatches.batched = nil
        let names = intentionsWatches.names
        guard !names.isEmpty else { return }
        intentionsWatches.generation += 1
        let generation = intentionsWatches.generation
        let source = self.source
        let endpoint = WatchEndpoint<IntentionMatches>.json(Self.intentionsPath, query: [("by", "destination")] + names.map { ("name", $0) })
        let task = Task {
            await source.client.watch(endpoint, policy: source.settings.watchPolicy, onError: { error in
                source.metrics.consulWatchFailed(Self.intentionsPath)
                source.logger.warning("intentions watch failed; keeping the last answer", metadata: ["error": "\(error.message)"])
                if error.isPermissionDenied {
                    Task { await self.batchedIntentionsRefused(generation) }
                }
            }) { matches, metadata in
                await self.batchedIntentionsAnswered(generation, names: names, matches, metadata: metadata)
            }
        }
        intentionsWatches.batched = (generation, task)
    }

    func batchedIntentionsAnswered(_ generation: UInt64, names: [String], _ matches: IntentionMatches, metadata: ConsulMetadata) {
        guard intentionsWatches.batched?.generation == generation else { return }
        if case .split(let single, let retry) = intentionsWatches.mode {
            source.logger.info("the batched intentions query is answered again; one request for every service")
            for task in single.values { task.cancel() }
            retry?.cancel()
            intentionsWatches.mode = .batched
        }
        update(metadata: metadata) { state in
            state.intentions = matches
            state.intentionNames = Set(names)
            state.intentionRefusals = [:]
        }
    }

    /// A 403 on the batched form: split it (once), and try it again later.
    func batchedIntentionsRefused(_ generation: UInt64) {
        guard !stopped, let batched = intentionsWatches.batched, batched.generation == generation else { return }
        batched.task.cancel()
        intentionsWatches.batched = nil
        var single: [String: Task<Void, Never>] = [:]
        if case .split(let current, let retry) = intentionsWatches.mode {
            single = current
            retry?.cancel()
        } else {
            source.logger.warning(
                "the token may not read the intentions of every linked service; asking for each service on its own",
                metadata: ["services": "\(intentionsWatches.names.count)", "retryBatchedAfter": "\(source.settings.intentionsBatchRetry)"]
            )
            for name in intentionsWatches.names { single[name] = startSingleIntentionsWatch(name) }
        }
        let delay = source.settings.intentionsBatchRetry
        let retry = Task {
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled else { return }
            await self.retryBatchedIntentions()
        }
        intentionsWatches.mode = .split(single: single, retry: retry)
    }

    func retryBatchedIntentions() {
        guard !stopped, case .split = intentionsWatches.mode, intentionsWatches.batched == nil else { return }
        startBatchedIntentionsWatch()
    }

    func startSingleIntentionsWatch(_ name: String) -> Task<Void, Never> {
        let source = self.source
        let endpoint = WatchEndpoint<IntentionMatches>.json(Self.intentionsPath, query: [("by", "destination"), ("name", name)])
        return Task {
            await source.client.watch(endpoint, policy: source.settings.watchPolicy, onError: { error in
                source.metrics.consulWatchFailed(Self.intentionsPath)
                source.logger.warning("intentions watch failed; keeping the last answer", metadata: ["service": "\(name)", "error": "\(error.message)"])
                if error.isPermissionDenied {
                    Task { await self.singleIntentionsRefused(name, error.message) }
                }
            }) { matches, metadata in
                await self.singleIntentionsAnswered(name, matches, metadata: metadata)
            }
        }
    }

    func singleIntentionsAnswered(_ name: String, _ matches: IntentionMatches, metadata: ConsulMetadata) {
        guard case .split(let single, _) = intentionsWatches.mode, single[name] != nil else { return }
        update(metadata: metadata) { state in
            state.intentions = (state.intentions ?? [:]).merging([name: matches[name] ?? []]) { $1 }
            state.intentionNames.insert(name)
            state.intentionRefusals[name] = nil
        }
    }

    /// Recorded for the service's reason; intentions it was already served with stay (an error
    /// never removes data).
    func singleIntentionsRefused(_ name: String, _ message: String) {
        guard case .split(let single, _) = intentionsWatches.mode, single[name] != nil, state.intentionRefusals[name] != message else { return }
        update(metadata: ConsulMetadata()) { $0.intentionRefusals[name] = message }
    }
}

import ConsulAPI
import Logging

/// The intentions watches of one scope (docs/DECISIONS.md D37).
///
/// The scope's `service-intentions` list is always watched, and normally it is all there is: the
/// intentions are derived from it (WatchCoordinator+IntentionsList.swift). When ACLs hid some of
/// its entries, the match query below runs as well, and its answers decide (`matching`).
///
/// The match query: one batched request names every linked service of the scope. Consul refuses the
/// whole batch with 403 when the token may not read the intentions of even one of them, so on a
/// refusal the watch splits into one request per service: the missing permission then costs only
/// that service. The batched form is tried again after `intentionsBatchRetry`, while the
/// per-service watches go on (docs/DECISIONS.md D37).
struct IntentionsWatches {
    enum Mode {
        case batched
        /// One watch per linked name; `retry` waits to try the batched form again.
        case split(single: [String: WatchTasks.Handle], retry: WatchTasks.Handle?)
    }

    /// The scope's linked names, sorted: what the watches are asked for.
    var names: [String] = []
    var mode = Mode.batched
    /// The batched watch: the only one in batched mode, a retry of the batched form in split mode.
    /// Its handle also tells its late callbacks from those of the watch that replaced it.
    var batched: WatchTasks.Handle?
    /// The `service-intentions` list watch.
    var list: WatchTasks.Handle?
    /// The last list answer was not complete: the match watches run.
    var matching = false

    mutating func stopAll(_ tasks: WatchTasks) {
        list.map(tasks.stop)
        list = nil
        stopMatch(tasks)
    }

    /// Stops the match watches; the list watch goes on.
    mutating func stopMatch(_ tasks: WatchTasks) {
        matching = false
        batched.map(tasks.stop)
        batched = nil
        if case .split(let single, let retry) = mode {
            for handle in single.values { tasks.stop(handle) }
            retry.map(tasks.stop)
        }
        mode = .batched
    }
}

extension WatchCoordinator {
    static let intentionsPath = "/v1/connect/intentions/match"

    /// Follows the scope's linked names. The answers so far stay valid for the names they covered
    /// until new ones arrive, so served services are not dropped while a watch restarts.
    func reconcileIntentionsWatches(_ scope: ConsulScope, names: [String]) {
        if intentionsWatches[scope]?.list == nil { startIntentionsListWatch(scope) }
        var watches = intentionsWatches[scope] ?? IntentionsWatches()
        guard watches.names != names else { return }
        watches.names = names
        intentionsWatches[scope] = watches
        // The list covers every name of the scope; only the match query names them.
        guard watches.matching else { return }
        switch watches.mode {
        case .batched:
            startBatchedIntentionsWatch(scope)
        case .split(var single, let retry):
            let linked = Set(names)
            for (name, handle) in single where !linked.contains(name) {
                tasks.stop(handle)
                single[name] = nil
            }
            for name in names where single[name] == nil {
                single[name] = startSingleIntentionsWatch(scope, name)
            }
            intentionsWatches[scope]?.mode = .split(single: single, retry: retry)
            // A retry of the batched form under way asks for the new names.
            if watches.batched != nil { startBatchedIntentionsWatch(scope) }
        }
    }

    func startBatchedIntentionsWatch(_ scope: ConsulScope) {
        guard var watches = intentionsWatches[scope] else { return }
        watches.batched.map(tasks.stop)
        watches.batched = nil
        let names = watches.names
        if !names.isEmpty {
            let (source, tasks) = (self.source, self.tasks)
            let query = [("by", "destination")] + names.map { ("name", $0) }
            let endpoint = WatchEndpoint<IntentionMatches>.json(Self.intentionsPath, query: query, scope: scope)
            watches.batched = tasks.start { watch in
                await source.watch(
                    endpoint, label: Self.intentionsPath,
                    onError: { error in
                        source.logger.warning("intentions watch failed; keeping the last answer", metadata: ["scope": "\(scope)", "error": "\(error.message)"])
                        if error.isPermissionDenied {
                            tasks.start { _ in await self.batchedIntentionsRefused(scope, watch) }
                        }
                    }
                ) { matches, metadata in
                    await self.batchedIntentionsAnswered(scope, watch, names: names, matches, metadata: metadata)
                }
            }
        }
        intentionsWatches[scope] = watches
    }

    func batchedIntentionsAnswered(_ scope: ConsulScope, _ watch: WatchTasks.Handle, names: [String], _ matches: IntentionMatches, metadata: ConsulMetadata) {
        guard let watches = intentionsWatches[scope], watches.batched == watch else { return }
        if case .split(let single, let retry) = watches.mode {
            source.logger.info("the batched intentions query is answered again; one request for every service", metadata: ["scope": "\(scope)"])
            for handle in single.values { tasks.stop(handle) }
            retry.map(tasks.stop)
            intentionsWatches[scope]?.mode = .batched
        }
        update(metadata: metadata) { state in
            for name in names {
                state.intentions[scope.qualified(name)] = matches[name] ?? []
                state.intentionRefusals[scope.qualified(name)] = nil
            }
        }
    }

    /// A 403 on the batched form: split it (once), and try it again later.
    func batchedIntentionsRefused(_ scope: ConsulScope, _ watch: WatchTasks.Handle) {
        guard !stopped, let watches = intentionsWatches[scope], watches.batched == watch else { return }
        tasks.stop(watch)
        intentionsWatches[scope]?.batched = nil
        var single: [String: WatchTasks.Handle] = [:]
        if case .split(let current, let retry) = watches.mode {
            single = current
            retry.map(tasks.stop)
        } else {
            source.logger.warning(
                "the token may not read the intentions of every linked service; asking for each service on its own",
                metadata: ["scope": "\(scope)", "services": "\(watches.names.count)", "retryBatchedAfter": "\(source.settings.intentionsBatchRetry)"]
            )
            for name in watches.names { single[name] = startSingleIntentionsWatch(scope, name) }
        }
        let delay = source.settings.intentionsBatchRetry
        let retry = tasks.start { timer in
            guard (try? await Task.sleep(for: delay)) != nil else { return }
            await self.retryBatchedIntentions(scope, timer)
        }
        intentionsWatches[scope]?.mode = .split(single: single, retry: retry)
    }

    /// The retry timer `timer` ended; a timer replaced meanwhile (split again) does nothing.
    func retryBatchedIntentions(_ scope: ConsulScope, _ timer: WatchTasks.Handle) {
        guard !stopped, let watches = intentionsWatches[scope], case .split(_, let retry) = watches.mode, retry == timer, watches.batched == nil else { return }
        startBatchedIntentionsWatch(scope)
    }

    func startSingleIntentionsWatch(_ scope: ConsulScope, _ name: String) -> WatchTasks.Handle {
        let (source, tasks) = (self.source, self.tasks)
        let key = scope.qualified(name)
        let endpoint = WatchEndpoint<IntentionMatches>.json(Self.intentionsPath, query: [("by", "destination"), ("name", name)], scope: scope)
        return tasks.start { watch in
            await source.watch(
                endpoint, label: Self.intentionsPath,
                onError: { error in
                    source.logger.warning("intentions watch failed; keeping the last answer", metadata: ["service": "\(key)", "error": "\(error.message)"])
                    if error.isPermissionDenied {
                        tasks.start { _ in await self.singleIntentionsRefused(scope, name, watch, error.message) }
                    }
                }
            ) { matches, metadata in
                await self.singleIntentionsAnswered(scope, name, watch, matches, metadata: metadata)
            }
        }
    }

    /// Whether `watch` is the current per-service watch of `name` (not one stopped meanwhile).
    func isSplitWatch(_ scope: ConsulScope, _ name: String, _ watch: WatchTasks.Handle) -> Bool {
        guard case .split(let single, _) = intentionsWatches[scope]?.mode else { return false }
        return single[name] == watch
    }

    func singleIntentionsAnswered(_ scope: ConsulScope, _ name: String, _ watch: WatchTasks.Handle, _ matches: IntentionMatches, metadata: ConsulMetadata) {
        guard isSplitWatch(scope, name, watch) else { return }
        let key = scope.qualified(name)
        update(metadata: metadata) { state in
            state.intentions[key] = matches[name] ?? []
            state.intentionRefusals[key] = nil
        }
    }

    /// Recorded for the service's reason; intentions it was already served with stay (an error
    /// never removes data).
    func singleIntentionsRefused(_ scope: ConsulScope, _ name: String, _ watch: WatchTasks.Handle, _ message: String) {
        let key = scope.qualified(name)
        guard isSplitWatch(scope, name, watch), state.intentionRefusals[key] != message else { return }
        update(metadata: ConsulMetadata()) { $0.intentionRefusals[key] = message }
    }
}

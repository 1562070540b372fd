import ConsulAPI
import Logging

/// The intentions list watch (docs/DECISIONS.md D37): one blocking watch of the scope's
/// `service-intentions` list, whose size does not grow with the number of linked services, and
/// the intentions derived from it (`IntentionsFromEntries`).
///
/// The list leaves out the entries the token may not read, notably the `*` destination's when the
/// token has per-service rules only (`conf/policies/consul-acl-gateway.hcl`), and a missing deny must never widen access. So an answer
/// that is not known to be complete turns the match query on for the scope: Consul's match answer
/// includes the wildcard intentions of every name the token may read. A complete answer turns it
/// off again.
extension WatchCoordinator {
    static let intentionsListPath = "/v1/config/service-intentions"

    func startIntentionsListWatch(_ scope: ConsulScope) {
        let (source, tasks) = (self.source, self.tasks)
        let endpoint = WatchEndpoint<ACLFilteredList<ServiceIntentionsEntry>>.aclFilteredList(Self.intentionsListPath, scope: scope)
        let handle = tasks.start { _ in
            await source.watch(
                endpoint, label: Self.intentionsListPath,
                onError: { error in
                    source.logger.warning("intentions list watch failed; keeping the last answer", metadata: ["scope": "\(scope)", "error": "\(error.message)"])
                    // A list the token may not read at all tells nothing either; the match query may.
                    if error.isPermissionDenied {
                        tasks.start { _ in await self.intentionsListIncomplete(scope, metadata: ConsulMetadata(), why: "the list is refused: \(error.message)") }
                    }
                }
            ) { answer, metadata in
                await self.intentionsListAnswered(scope, answer, metadata: metadata)
            }
        }
        intentionsWatches[scope, default: IntentionsWatches()].list = handle
    }

    func intentionsListAnswered(_ scope: ConsulScope, _ answer: ACLFilteredList<ServiceIntentionsEntry>, metadata: ConsulMetadata) {
        guard intentionsWatches[scope]?.list != nil else { return }
        guard answer.isComplete else {
            let why =
                answer.filteredByACLs
                ? "the token may not read every service-intentions entry (X-Consul-Results-Filtered-By-ACLs)"
                : "without a token Consul does not say whether ACLs hid entries, and its ACLs deny by default"
            intentionsListIncomplete(scope, metadata: metadata, why: why)
            return
        }
        if intentionsWatches[scope]?.matching == true {
            source.logger.info("the service-intentions list is complete again; the intentions match query stops", metadata: ["scope": "\(scope)"])
            intentionsWatches[scope]?.stopMatch(tasks)
        }
        // The match answers are dropped with the query: a later fallback asks again.
        let keys = Set(intentionsWatches[scope]?.names.map(scope.qualified) ?? [])
        update(metadata: metadata) { state in
            state.intentionEntries[scope] = answer.entries
            state.intentionsFromMatch.remove(scope)
            state.intentions = state.intentions.filter { !keys.contains($0.key) }
            state.intentionRefusals = state.intentionRefusals.filter { !keys.contains($0.key) }
        }
    }

    /// The match query decides for the scope from now on. The last complete list stays until the
    /// match has answered for a service (`SnapshotBuilder.intentions(for:state:lookups:)`).
    func intentionsListIncomplete(_ scope: ConsulScope, metadata: ConsulMetadata, why: String) {
        guard !stopped, let watches = intentionsWatches[scope], watches.list != nil else { return }
        if !watches.matching {
            source.logger.warning(
                "the intentions of the linked services are asked from the match query: \(why)",
                metadata: ["scope": "\(scope)", "endpoint": "\(Self.intentionsListPath)", "services": "\(watches.names.count)"]
            )
            intentionsWatches[scope]?.matching = true
            startBatchedIntentionsWatch(scope)
        }
        guard !state.intentionsFromMatch.contains(scope) else { return }
        update(metadata: metadata) { $0.intentionsFromMatch.insert(scope) }
    }

    /// A scope nothing is linked in any more: its watches and what they delivered go.
    func stopIntentionsWatches(_ scope: ConsulScope) {
        intentionsWatches[scope]?.stopAll(tasks)
        intentionsWatches[scope] = nil
        state.intentionEntries[scope] = nil
        state.intentionsFromMatch.remove(scope)
    }
}

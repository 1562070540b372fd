import ConsulAPI
import MeshIdentity

/// The intentions of the linked services of one scope, derived from the scope's `service-intentions`
/// entries exactly as `GET /v1/connect/intentions/match?by=destination&name=S` answers them
/// (Consul's intentions API documentation, list matching intentions). Pure.
///
/// Why: the match query names every linked service, and its answer repeats every wildcard-destination
/// intention once per name. At 10,000 services that is a URL of ~150 KB and an answer of megabytes,
/// where the list carries each intention once (issue 23; the figures are in BENCHMARKS.md).
///
/// Consul answers the match query with the sources of the entry named S and of the entry named `*`
/// of S's namespace and partition (`getIntentionPrecedenceMatchServiceNames`), each turned into an
/// intention by `ToIntention`, sorted by `IntentionPrecedenceSorter`. This does the same.
struct IntentionsFromEntries: Sendable {
    /// One source of an entry as an intention, with the keys Consul sorts by.
    struct Ranked: Sendable {
        var rule: IntentionRule
        var sourceNamespace: String
        var destinationName: String
    }

    /// A service's intentions, or the first one Consul should never have sent.
    typealias Rules = Result<[IntentionRule], InvalidIntention>

    let scope: ConsulScope
    /// Keyed by the name's bytes: Consul compares names byte for byte, and a `String` key would merge
    /// the entry of `café` written one way (NFC) into its canonically equal twin (NFD).
    private var byDestination: [[UInt8]: [Ranked]] = [:]
    /// The first invalid source of each destination's entry, by the same key.
    private var invalid: [[UInt8]: InvalidIntention] = [:]

    init(entries: [ServiceIntentionsEntry], scope: ConsulScope) {
        self.scope = scope
        for entry in entries {
            // A list is asked for one scope; an entry naming another one is not about its services.
            let entryScope = ConsulScope(partition: entry.Partition, namespace: entry.Namespace)
            guard entry.Partition.isEmpty && entry.Namespace.isEmpty || entryScope == scope else { continue }
            let key = Array(entry.Name.utf8)
            for source in entry.Sources {
                do {
                    byDestination[key, default: []].append(try Self.ranked(source, of: entry, scope: scope))
                } catch {
                    if invalid[key] == nil { invalid[key] = error }
                }
            }
        }
    }

    /// What the match endpoint answers for `service`, in its order; a failure when its entry or
    /// the `*` entry has an intention Consul should never have sent.
    func rules(for service: String) -> Rules {
        var keys = [Array(service.utf8)]
        if service != "*" { keys.append(Array("*".utf8)) }
        if let invalid = keys.lazy.compactMap({ self.invalid[$0] }).first { return .failure(invalid) }
        return .success(keys.flatMap { byDestination[$0] ?? [] }.sorted(by: Self.consulOrder).map(\.rule))
    }

    /// `IntentionPrecedenceSorter`: precedence descending, then source namespace, source name and
    /// destination name ascending (the destination namespace is the scope's). Intentions of equal
    /// precedence have equal wildness, so their order never changes a verdict (Consul's
    /// `agent/xds/rbac.go`); following Consul's keeps the list equal to the match answer anyway.
    static func consulOrder(_ a: Ranked, _ b: Ranked) -> Bool {
        if a.rule.precedence != b.rule.precedence { return a.rule.precedence > b.rule.precedence }
        if a.sourceNamespace != b.sourceNamespace { return a.sourceNamespace < b.sourceNamespace }
        if a.rule.sourceName != b.rule.sourceName { return a.rule.sourceName < b.rule.sourceName }
        return a.destinationName < b.destinationName
    }

    /// `ToIntention` of one source. Consul stores a source with its namespace and partition filled
    /// in from the destination's when it names none (peers and sameness groups: the namespace
    /// only), so an empty one here is the scope's.
    static func ranked(_ source: SourceIntention, of entry: ServiceIntentionsEntry, scope: ConsulScope) throws(InvalidIntention) -> Ranked {
        let local = source.Peer.isEmpty && source.SamenessGroup.isEmpty
        let namespace = source.Namespace.isEmpty ? scope.namespace : source.Namespace
        let partition = source.Partition.isEmpty && local ? scope.partition : source.Partition
        let permissions: [IntentionPermissionRule]
        do {
            permissions = try IntentionPermissionRule.rules(source.Permissions)
        } catch {
            let name = ConsulScope(partition: partition, namespace: namespace).qualified(source.Name)
            throw InvalidIntention(source: name, destination: scope.qualified(entry.Name), field: error.field, problem: error.problem)
        }
        let precedence =
            source.Precedence > 0
            ? source.Precedence
            : Self.precedence(sourceNamespace: namespace, sourceName: source.Name, destinationNamespace: scope.namespace, destinationName: entry.Name)
        let rule = IntentionRule(
            sourceName: source.Name,
            sourceNamespace: namespace,
            sourcePartition: partition,
            sourcePeer: source.Peer,
            sourceSamenessGroup: source.SamenessGroup,
            sourceType: source.sourceType.isEmpty ? "consul" : source.sourceType,
            action: IntentionAction(consul: source.Action),
            permissions: permissions,
            // The destination's JWT requirement is copied into each of its intentions.
            requiresJWT: entry.JWT.map { $0 != .null } ?? false,
            precedence: precedence
        )
        return Ranked(rule: rule, sourceNamespace: namespace, destinationName: entry.Name)
    }

    /// Consul's intention precedence table (its `computeIntentionPrecedence`), for an answer
    /// without `Precedence`: 9, 6 or 3 for a destination with two, one or no exact parts
    /// (namespace, name), less one for each part of the source that is not exact.
    static func precedence(sourceNamespace: String, sourceName: String, destinationNamespace: String, destinationName: String) -> Int {
        func exactParts(_ namespace: String, _ name: String) -> Int { namespace == "*" ? 0 : (name == "*" ? 1 : 2) }
        return 3 * (exactParts(destinationNamespace, destinationName) + 1) - (2 - exactParts(sourceNamespace, sourceName))
    }
}

extension SnapshotBuilder {
    /// The intentions `service` is served with (docs/DECISIONS.md D37).
    ///
    /// A scope whose latest list answer was complete uses it. One whose list was filtered by ACLs
    /// uses the match answers; until the match has answered for the service, the last complete
    /// list stays (an error or a narrower token never removes data), and without either the
    /// service waits, or is refused when the agent refused its intentions.
    ///
    /// An intention Consul should never have sent is a success too: the service is served, and
    /// denies every request with the reason (docs/DECISIONS.md D28).
    static func intentions(for service: LinkedService, state: ConsulState, lookups: Lookups) -> Result<IntentionsFromEntries.Rules, NotServed> {
        let derived = lookups.intentions[service.scope]
        if !state.intentionsFromMatch.contains(service.scope), let derived {
            return .success(derived.rules(for: service.name))
        }
        if let matched = state.intentions[service.key] {
            return .success(Result { () throws(InvalidIntention) in try matched.map { intention throws(InvalidIntention) in try IntentionRule(intention, service: service.key) } })
        }
        if let derived { return .success(derived.rules(for: service.name)) }
        if let refusal = state.intentionRefusals[service.key] {
            return .failure(NotServed(reason: NotServedReason(.intentionsForbidden, "intentions not readable: \(refusal)")))
        }
        return .failure(NotServed(reason: NotServedReason(.waiting, "intentions not fetched yet")))
    }
}

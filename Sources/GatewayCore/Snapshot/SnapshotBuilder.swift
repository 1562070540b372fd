import ConsulAPI
import Foundation
import MeshIdentity

/// Builds a snapshot from the watch state with the serving rule (docs/COMPATIBILITY.md, When a linked service is served). Pure.
public enum SnapshotBuilder {
    public static func build(from state: ConsulState, version: UInt64, now: Date) -> GatewaySnapshot {
        var cache = SnapshotBuildCache()
        return build(from: state, version: version, now: now, cache: &cache)
    }

    /// The same, reusing the Lambda settings and leaf checks of services whose inputs did not change
    /// since the build that filled `cache` (which then holds this build's): at 10,000 services these
    /// were a quarter of a rebuild (ARN parsing and SPIFFE IDs most of it).
    public static func build(from state: ConsulState, version: UInt64, now: Date, cache: inout SnapshotBuildCache) -> GatewaySnapshot {
        var snapshot = GatewaySnapshot.empty
        snapshot.version = version
        snapshot.createdAt = now
        if let roots = state.roots {
            snapshot.trustDomain = roots.TrustDomain
            snapshot.activeRootID = roots.ActiveRootID
            snapshot.rootPEMs = roots.Roots.map(\.RootCert)
        }
        let linked = state.linkedServices
        snapshot.datacenter = state.datacenterOverride ?? datacenter(from: state, linked: linked) ?? ""
        snapshot.defaultIntentionPolicy = state.defaultIntentionPolicy
        snapshot.sanitizeXFCC = state.mesh?.entry?.HTTP?.SanitizeXForwardedClientCert ?? false
        snapshot.accessLogs = state.proxyDefaults?.entry?.AccessLogs
        if let incoming = state.mesh?.entry?.TLS?.Incoming {
            let (tls, corrections) = IncomingTLS.resolve(minimum: incoming.TLSMinVersion, maximum: incoming.TLSMaxVersion, cipherSuites: incoming.CipherSuites)
            snapshot.incomingTLS = tls
            snapshot.configurationWarnings = corrections.map(\.warning)
        }

        let lookups = Lookups(state)
        var nextCache = SnapshotBuildCache()
        nextCache.entries.reserveCapacity(linked.count)
        nextCache.leaves.reserveCapacity(linked.count)
        for service in linked {
            let lambda = { (defaults: ServiceDefaults?, proxyDefaults: ProxyDefaults?) -> Result<LambdaSettings?, LambdaConfigError> in
                let result = cache.settings(service, defaults: defaults, proxyDefaults: proxyDefaults) {
                    Result { () throws(LambdaConfigError) in try LambdaSettings.resolve(service: service.name, serviceDefaults: defaults, proxyDefaults: proxyDefaults) }
                }
                nextCache.entries[service.key] = SnapshotBuildCache.Entry(service: service, defaults: defaults, proxyDefaults: proxyDefaults, result: result)
                return result
            }
            let leaf = { (answer: LeafCertificate) -> ServiceLeaf? in
                let checked = cache.leaf(service, answer, datacenter: snapshot.datacenter, trustDomain: snapshot.trustDomain) {
                    validLeaf(answer, service: service, datacenter: snapshot.datacenter, trustDomain: snapshot.trustDomain)
                }
                nextCache.leaves[service.key] = SnapshotBuildCache.LeafEntry(service: service, answer: answer, datacenter: snapshot.datacenter, trustDomain: snapshot.trustDomain, leaf: checked)
                return checked
            }
            switch serve(service, state: state, lookups: lookups, snapshot: snapshot, lambda: lambda, leaf: leaf) {
            case .success(let served):
                snapshot.services[service.key] = served
                for sni in served.snis { snapshot.sniTable[sni] = service.key }
            case .failure(let failure):
                snapshot.notServed[service.key] = failure.reason
            }
        }
        cache = nextCache
        return snapshot
    }

    struct NotServed: Error {
        var reason: NotServedReason
    }

    /// Entries by service name, built once per snapshot: a linear search per service would make
    /// 10,000 linked services cost 10^8 comparisons.
    struct Lookups {
        var serviceDefaults: [String: ServiceDefaults] = [:]
        var resolvers: [String: ServiceResolver] = [:]
        var intentions: [ConsulScope: IntentionsFromEntries] = [:]

        init(_ state: ConsulState) {
            for (scope, entries) in state.intentionEntries { intentions[scope] = IntentionsFromEntries(entries: entries, scope: scope) }
            for (scope, entries) in state.serviceDefaults {
                for entry in entries { serviceDefaults[scope.qualified(entry.Name)] = entry }
            }
            for (scope, entries) in state.serviceResolvers {
                for entry in entries { resolvers[scope.qualified(entry.Name)] = entry }
            }
        }
    }

    static func serve(
        _ service: LinkedService,
        state: ConsulState,
        lookups: Lookups,
        snapshot: GatewaySnapshot,
        lambda resolveLambda: (ServiceDefaults?, ProxyDefaults?) -> Result<LambdaSettings?, LambdaConfigError>,
        leaf checkLeaf: (LeafCertificate) -> ServiceLeaf?
    ) -> Result<ServedService, NotServed> {
        func no(_ kind: NotServedReason.Kind, _ text: String) -> Result<ServedService, NotServed> { .failure(NotServed(reason: NotServedReason(kind, text))) }
        let (name, key, scope) = (service.name, service.key, service.scope)
        guard let catalog = state.catalogServices[scope] else { return no(.waiting, "catalog not fetched yet") }
        guard catalog[name] != nil else { return no(.noInstance, "no catalog instance") }
        guard state.roots != nil, !snapshot.trustDomain.isEmpty else { return no(.waiting, "CA roots not known yet") }
        guard !snapshot.datacenter.isEmpty else { return no(.waiting, "datacenter not known yet") }
        guard let leafAnswer = state.leaves[key] else { return no(.waiting, "no leaf certificate yet") }
        guard let leaf = checkLeaf(leafAnswer) else {
            return no(.invalidLeaf, "leaf certificate is invalid")
        }
        var intentions: [IntentionRule] = []
        var invalidIntention: InvalidIntention?
        switch Self.intentions(for: service, state: state, lookups: lookups) {
        case .success(.success(let rules)): intentions = rules
        case .success(.failure(let invalid)): invalidIntention = invalid
        case .failure(let failure): return .failure(failure)
        }
        guard state.serviceDefaults[scope] != nil, state.serviceResolvers[scope] != nil, let proxyDefaults = state.proxyDefaults, state.mesh != nil else {
            return no(.waiting, "config entries not fetched yet")
        }

        let defaults = lookups.serviceDefaults[key]
        let protocolName = (defaults?.protocolName).flatMap { $0.isEmpty ? nil : $0 } ?? proxyDefaults.entry?.protocol ?? "tcp"
        guard ["http", "http2", "grpc"].contains(protocolName.lowercased()) else { return no(.notHTTP, "protocol is \(protocolName), not http, http2 or grpc") }
        let lambda: LambdaSettings
        switch resolveLambda(defaults, proxyDefaults.entry) {
        case .success(let settings?): lambda = settings
        case .success(nil): return no(.notLambda, "not a Lambda service")
        case .failure(let error): return no(.invalidLambdaConfig, error.description)
        }

        let resolver = lookups.resolvers[key]
        let subsets = (resolver?.Subsets.keys).map { Array($0).sorted() } ?? []
        let snis = ([nil] + subsets).map { subset in
            ServiceSNI.make(
                service: name, subset: subset, namespace: scope.namespace, partition: scope.partition,
                datacenter: snapshot.datacenter, trustDomain: snapshot.trustDomain
            )
        }
        let timeout = resolver.flatMap { $0.RequestTimeout > .zero ? $0.RequestTimeout : nil }
        return .success(
            ServedService(
                name: name,
                snis: snis,
                lambda: lambda,
                protocolName: protocolName.lowercased(),
                requestTimeout: timeout,
                intentions: intentions,
                invalidIntention: invalidIntention,
                leaf: leaf,
                namespace: scope.namespace,
                partition: scope.partition
            )
        )
    }

    /// The datacenter from the first leaf's SPIFFE ID (docs/DECISIONS.md D39).
    static func datacenter(from state: ConsulState, linked: [LinkedService]) -> String? {
        for service in linked {
            if let uri = state.leaves[service.key]?.ServiceURI, let id = SPIFFEID(parsing: uri) { return id.datacenter }
        }
        return nil
    }

    /// A leaf is valid when its SPIFFE ID names the service, in its partition and namespace, our
    /// datacenter and trust domain, and it has dates.
    static func validLeaf(_ leaf: LeafCertificate, service: LinkedService, datacenter: String, trustDomain: String) -> ServiceLeaf? {
        let expected = SPIFFEID(trustDomain: trustDomain, partition: service.scope.partition, namespace: service.scope.namespace, datacenter: datacenter, service: service.name)
        // The agent writes the ID exactly so; parsing (for a trust domain in other case, or
        // percent-encoded segments) only when the text differs. 10,000 services: one string each.
        let matches =
            leaf.ServiceURI == expected.description
            || SPIFFEID(parsing: leaf.ServiceURI).map { id in
                id.isInTrustDomain(trustDomain) && id.service == expected.service && id.namespace == expected.namespace
                    && id.partition == expected.partition && id.datacenter == expected.datacenter
            } == true
        guard matches, leaf.CertPEM.contains("BEGIN CERTIFICATE"), leaf.PrivateKeyPEM.contains("PRIVATE KEY"),
            let validAfter = leaf.validAfter, let validBefore = leaf.validBefore
        else { return nil }
        return ServiceLeaf(
            certificatePEM: leaf.CertPEM, privateKeyPEM: leaf.PrivateKeyPEM, serviceURI: leaf.ServiceURI, serial: leaf.SerialNumber,
            validAfter: validAfter, validBefore: validBefore, modifyIndex: leaf.ModifyIndex
        )
    }
}

/// What each service's Lambda settings and leaf checked out as in the last build, with the inputs
/// they came from: a build reuses them while the inputs are equal (copies of the same values, so
/// comparing them is cheap), which keeps one more link at 10,000 services proportional to the change.
public struct SnapshotBuildCache: Sendable {
    // Each entry names the service it was computed for (name and scope byte for byte), so that two
    // services whose keys collide never share a result.
    struct Entry: Sendable {
        var service: LinkedService
        var defaults: ServiceDefaults?
        var proxyDefaults: ProxyDefaults?
        var result: Result<LambdaSettings?, LambdaConfigError>
    }

    struct LeafEntry: Sendable {
        var service: LinkedService
        var answer: LeafCertificate
        var datacenter: String
        var trustDomain: String
        var leaf: ServiceLeaf?
    }

    var entries: [String: Entry] = [:]
    var leaves: [String: LeafEntry] = [:]

    /// The cached check when the leaf, datacenter and trust domain are unchanged, else `check()`.
    func leaf(_ service: LinkedService, _ answer: LeafCertificate, datacenter: String, trustDomain: String, check: () -> ServiceLeaf?) -> ServiceLeaf? {
        if let entry = leaves[service.key], Self.same(entry.service, service), entry.datacenter == datacenter, entry.trustDomain == trustDomain, entry.answer == answer {
            return entry.leaf
        }
        return check()
    }

    public init() {}

    /// The cached result when both entries are unchanged, else `resolve()`.
    func settings(
        _ service: LinkedService,
        defaults: ServiceDefaults?,
        proxyDefaults: ProxyDefaults?,
        resolve: () -> Result<LambdaSettings?, LambdaConfigError>
    ) -> Result<LambdaSettings?, LambdaConfigError> {
        if let entry = entries[service.key], Self.same(entry.service, service), entry.defaults == defaults, entry.proxyDefaults == proxyDefaults {
            return entry.result
        }
        return resolve()
    }

    static func same(_ a: LinkedService, _ b: LinkedService) -> Bool {
        a.name.utf8.elementsEqual(b.name.utf8) && a.scope.partition.utf8.elementsEqual(b.scope.partition.utf8)
            && a.scope.namespace.utf8.elementsEqual(b.scope.namespace.utf8)
    }
}

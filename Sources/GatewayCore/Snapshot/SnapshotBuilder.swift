import ConsulAPI
import Foundation
import MeshIdentity

/// Builds a snapshot from the watch state with the serving rule of mesh-identity.md §8. Pure.
public enum SnapshotBuilder {
    public static func build(from state: ConsulState, version: UInt64, now: Date) -> GatewaySnapshot {
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
        if let incoming = state.mesh?.entry?.TLS?.Incoming {
            let (tls, corrections) = IncomingTLS.resolve(minimum: incoming.TLSMinVersion, maximum: incoming.TLSMaxVersion, cipherSuites: incoming.CipherSuites)
            snapshot.incomingTLS = tls
            snapshot.configurationWarnings = corrections.map(\.warning)
        }

        let lookups = Lookups(state)
        for service in linked {
            switch serve(service, state: state, lookups: lookups, snapshot: snapshot) {
            case .success(let served):
                snapshot.services[service.key] = served
                for sni in served.snis { snapshot.sniTable[sni] = service.key }
            case .failure(let failure):
                snapshot.notServed[service.key] = failure.reason
            }
        }
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

    static func serve(_ service: LinkedService, state: ConsulState, lookups: Lookups, snapshot: GatewaySnapshot) -> Result<ServedService, NotServed> {
        func no(_ kind: NotServedReason.Kind, _ text: String) -> Result<ServedService, NotServed> { .failure(NotServed(reason: NotServedReason(kind, text))) }
        let (name, key, scope) = (service.name, service.key, service.scope)
        guard let catalog = state.catalogServices[scope] else { return no(.waiting, "catalog not fetched yet") }
        guard catalog[name] != nil else { return no(.noInstance, "no catalog instance") }
        guard state.roots != nil, !snapshot.trustDomain.isEmpty else { return no(.waiting, "CA roots not known yet") }
        guard !snapshot.datacenter.isEmpty else { return no(.waiting, "datacenter not known yet") }
        guard let leafAnswer = state.leaves[key] else { return no(.waiting, "no leaf certificate yet") }
        guard let leaf = validLeaf(leafAnswer, service: service, datacenter: snapshot.datacenter, trustDomain: snapshot.trustDomain) else {
            return no(.invalidLeaf, "leaf certificate is invalid")
        }
        let intentions: [IntentionRule]
        switch Self.intentions(for: service, state: state, lookups: lookups) {
        case .success(let rules): intentions = rules
        case .failure(let failure): return .failure(failure)
        }
        guard state.serviceDefaults[scope] != nil, state.serviceResolvers[scope] != nil, let proxyDefaults = state.proxyDefaults, state.mesh != nil else {
            return no(.waiting, "config entries not fetched yet")
        }

        let defaults = lookups.serviceDefaults[key]
        let protocolName = (defaults?.protocolName).flatMap { $0.isEmpty ? nil : $0 } ?? proxyDefaults.entry?.protocol ?? "tcp"
        guard ["http", "http2", "grpc"].contains(protocolName.lowercased()) else { return no(.notHTTP, "protocol is \(protocolName), not http, http2 or grpc") }
        let lambda: LambdaSettings
        do {
            guard let settings = try LambdaSettings.resolve(service: name, serviceDefaults: defaults, proxyDefaults: proxyDefaults.entry) else {
                return no(.notLambda, "not a Lambda service")
            }
            lambda = settings
        } catch {
            return no(.invalidLambdaConfig, error.description)
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
                leaf: leaf,
                namespace: scope.namespace,
                partition: scope.partition
            )
        )
    }

    /// The datacenter from the first leaf's SPIFFE ID (consul-api.md §4.5).
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
        let matches = leaf.ServiceURI == expected.description || SPIFFEID(parsing: leaf.ServiceURI).map { id in
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

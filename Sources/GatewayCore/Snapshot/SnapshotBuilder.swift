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
        snapshot.datacenter = state.datacenterOverride ?? datacenter(from: state) ?? ""
        snapshot.defaultIntentionPolicy = state.defaultIntentionPolicy
        snapshot.sanitizeXFCC = state.mesh?.entry?.HTTP?.SanitizeXForwardedClientCert ?? false
        if let incoming = state.mesh?.entry?.TLS?.Incoming {
            let (tls, corrections) = IncomingTLS.resolve(minimum: incoming.TLSMinVersion, maximum: incoming.TLSMaxVersion, cipherSuites: incoming.CipherSuites)
            snapshot.incomingTLS = tls
            snapshot.configurationWarnings = corrections.map(\.warning)
        }

        let lookups = Lookups(state)
        for service in state.linkedServices {
            switch serve(service, state: state, lookups: lookups, snapshot: snapshot) {
            case .success(let served):
                snapshot.services[service] = served
                for sni in served.snis { snapshot.sniTable[sni] = service }
            case .failure(let failure):
                snapshot.notServed[service] = failure.reason
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

        init(_ state: ConsulState) {
            for entry in state.serviceDefaults ?? [] { serviceDefaults[entry.Name] = entry }
            for entry in state.serviceResolvers ?? [] { resolvers[entry.Name] = entry }
        }
    }

    static func serve(_ name: String, state: ConsulState, lookups: Lookups, snapshot: GatewaySnapshot) -> Result<ServedService, NotServed> {
        func no(_ kind: NotServedReason.Kind, _ text: String) -> Result<ServedService, NotServed> { .failure(NotServed(reason: NotServedReason(kind, text))) }
        guard let catalog = state.catalogServices else { return no(.waiting, "catalog not fetched yet") }
        guard catalog[name] != nil else { return no(.noInstance, "no catalog instance") }
        guard state.roots != nil, !snapshot.trustDomain.isEmpty else { return no(.waiting, "CA roots not known yet") }
        guard !snapshot.datacenter.isEmpty else { return no(.waiting, "datacenter not known yet") }
        guard let leafAnswer = state.leaves[name] else { return no(.waiting, "no leaf certificate yet") }
        guard let leaf = validLeaf(leafAnswer, service: name, datacenter: snapshot.datacenter, trustDomain: snapshot.trustDomain) else {
            return no(.invalidLeaf, "leaf certificate is invalid")
        }
        guard state.intentions != nil, state.intentionNames.contains(name) else {
            if let refusal = state.intentionRefusals[name] { return no(.intentionsForbidden, "intentions not readable: \(refusal)") }
            return no(.waiting, "intentions not fetched yet")
        }
        guard state.serviceDefaults != nil, state.serviceResolvers != nil, let proxyDefaults = state.proxyDefaults, state.mesh != nil else {
            return no(.waiting, "config entries not fetched yet")
        }

        let defaults = lookups.serviceDefaults[name]
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

        let resolver = lookups.resolvers[name]
        let subsets = (resolver?.Subsets.keys).map { Array($0).sorted() } ?? []
        let snis = [ServiceSNI.make(service: name, datacenter: snapshot.datacenter, trustDomain: snapshot.trustDomain)]
            + subsets.map { ServiceSNI.make(service: name, subset: $0, datacenter: snapshot.datacenter, trustDomain: snapshot.trustDomain) }
        let timeout = resolver.flatMap { $0.RequestTimeout > .zero ? $0.RequestTimeout : nil }
        return .success(
            ServedService(
                name: name,
                snis: snis,
                lambda: lambda,
                protocolName: protocolName.lowercased(),
                requestTimeout: timeout,
                intentions: (state.intentions?[name] ?? []).map(IntentionRule.init),
                leaf: leaf
            )
        )
    }

    /// The datacenter from the first leaf's SPIFFE ID (consul-api.md §4.5).
    static func datacenter(from state: ConsulState) -> String? {
        for name in state.linkedServices {
            if let uri = state.leaves[name]?.ServiceURI, let dc = SPIFFEPath.segment("dc", in: uri) { return String(dc) }
        }
        return nil
    }

    /// A leaf is valid when it names the service, in our datacenter and trust domain, and has dates.
    static func validLeaf(_ leaf: LeafCertificate, service: String, datacenter: String, trustDomain: String) -> ServiceLeaf? {
        let uri = leaf.ServiceURI
        guard uri.hasPrefix("spiffe://"), uri.dropFirst(9).hasPrefix(trustDomain), uri.dropFirst(9 + trustDomain.count).hasPrefix("/"),
            SPIFFEPath.segment("svc", in: uri) == service[...],
            SPIFFEPath.segment("dc", in: uri) == datacenter[...],
            leaf.CertPEM.contains("BEGIN CERTIFICATE"), leaf.PrivateKeyPEM.contains("PRIVATE KEY"),
            let validAfter = leaf.validAfter, let validBefore = leaf.validBefore
        else { return nil }
        return ServiceLeaf(
            certificatePEM: leaf.CertPEM, privateKeyPEM: leaf.PrivateKeyPEM, serviceURI: leaf.ServiceURI, serial: leaf.SerialNumber,
            validAfter: validAfter, validBefore: validBefore, modifyIndex: leaf.ModifyIndex
        )
    }
}

/// Reading `spiffe://<td>/ns/<ns>/dc/<dc>/svc/<svc>` path segments without splitting the whole URI.
enum SPIFFEPath {
    static func segment(_ key: String, in uri: String) -> Substring? {
        guard let marker = uri.range(of: "/\(key)/") else { return nil }
        let rest = uri[marker.upperBound...]
        let end = rest.firstIndex(of: "/") ?? rest.endIndex
        let value = rest[..<end]
        return value.isEmpty ? nil : value
    }
}

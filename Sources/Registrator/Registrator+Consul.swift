import AWSAPI
import ConsulAPI
import Foundation
import NIOCore
import NIOHTTP1

extension Registrator {
    /// How many times a Consul call is tried within one run (A.2), and a `cas` write after a conflict.
    static let consulAttempts = 3

    /// Keys in order: the same entry is always the same bytes (logs, golden tests).
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// A.6.1 step 4: Community Edition has one scope; Enterprise every namespace of every managed
    /// partition. A partition whose namespaces cannot be listed is a failure of the run.
    func managedScopes(_ report: inout SyncReport) async -> [ConsulScope] {
        guard settings.enterprise else { return [.default] }
        var scopes: [ConsulScope] = []
        for partition in settings.partitions {
            do throws(ConsulError) {
                let response = try await consulCall(.GET, "/v1/namespaces", query: [("partition", partition)])
                let namespaces = try ConsulClient.decode([NamespaceName].self, response.body, endpoint: "/v1/namespaces")
                scopes += namespaces.map { ConsulScope(partition: partition, namespace: $0.Name) }
            } catch {
                report.failures.append("listing the namespaces of partition \(partition) failed: \(error)")
            }
        }
        return scopes.sorted()
    }

    struct NamespaceName: Decodable {
        var Name: String
    }

    /// The services of a scope tagged as the registrator's, each with its service-defaults entry:
    /// two list reads per scope, whatever the number of services.
    func managedServices(in scope: ConsulScope) async throws(ConsulError) -> [ManagedService] {
        let catalog = try await consulCall(.GET, "/v1/catalog/services", scope: scope)
        let names = try ConsulClient.decode([String: [String]?].self, catalog.body, endpoint: "/v1/catalog/services")
            .filter { $0.value?.contains(Self.managedTag) == true }.keys
        guard !names.isEmpty else { return [] }
        let defaults = try await consulCall(.GET, "/v1/config/service-defaults", scope: scope)
        let entries = try ConsulClient.decode([ServiceDefaults].self, defaults.body, endpoint: "/v1/config/service-defaults")
        let byName = Dictionary(entries.map { ($0.Name, $0) }, uniquingKeysWith: { first, _ in first })
        return names.sorted().map { ManagedService(name: $0, scope: scope, entry: byName[$0]) }
    }

    /// A.5 upsert: the service-defaults entry by read-modify-write with `cas`, then the catalog
    /// instance (configuration first, so a gateway never sees an instance without Lambda settings).
    func upsert(_ service: DesiredService) async throws(ConsulError) {
        let path = "/v1/config/service-defaults/\(service.name)"
        var written = false
        for _ in 0..<Self.consulAttempts where !written {
            let current = try await consulCall(.GET, path, scope: service.scope, allowNotFound: true)
            var entry: FreeFormJSON?
            var modifyIndex: UInt64 = 0
            if current.status != 404 {
                entry = try ConsulClient.decode(FreeFormJSON.self, current.body, endpoint: path)
                if case .number(let index)? = entry?.value(forCaseInsensitiveKey: "ModifyIndex") { modifyIndex = UInt64(index) }
            }
            let next = ServiceDefaultsEdit.entry(for: service, current: entry)
            let answer = try await consulCall(.PUT, "/v1/config", query: [("cas", String(modifyIndex))], scope: service.scope, body: next)
            // `false`: someone changed the entry since it was read; read it again.
            written = String(buffer: answer.body).trimmingCharacters(in: .whitespacesAndNewlines) == "true"
        }
        guard written else {
            throw ConsulError(.status(409), endpoint: path, "the entry kept changing under the registrator's writes; gave up after \(Self.consulAttempts) attempts")
        }
        try await consulCall(.PUT, "/v1/catalog/register", scope: service.scope, body: catalogRegistration(service))
    }

    func catalogRegistration(_ service: DesiredService) -> FreeFormJSON {
        var instance: [String: FreeFormJSON] = [
            "ID": .string(service.name),
            "Service": .string(service.name),
            "Tags": .array([.string(Self.managedTag)]),
        ]
        var registration: [String: FreeFormJSON] = [
            "Node": .string(settings.nodeName),
            "SkipNodeUpdate": .bool(true),
            "NodeMeta": .object(["external-node": .string("true"), "external-probe": .string("true")]),
        ]
        if !service.scope.isDefault {
            instance["Namespace"] = .string(service.scope.namespace)
            registration["Partition"] = .string(service.scope.partition)
        }
        registration["Service"] = .object(instance)
        return .object(registration)
    }

    /// A.5 delete, in this project's order: the instance (serving stops at once), the entry, then the
    /// mTLS data (already missing counts as deleted).
    func delete(_ service: ManagedService.Key) async throws {
        try await consulCall(.PUT, "/v1/catalog/deregister", scope: service.scope, body: .object(["Node": .string(settings.nodeName), "ServiceID": .string(service.name)]))
        try await consulCall(.DELETE, "/v1/config/service-defaults/\(service.name)", scope: service.scope)
        let desired = DesiredService(name: service.name, scope: service.scope, function: service.name, arguments: LambdaArguments(arn: ""))
        if let parameter = settings.extensionDataName(for: desired) {
            do throws(AWSAPIError) {
                try await aws.ssm.deleteParameter(name: parameter)
            } catch {
                // A.9 #10: nothing to delete is not a failure.
                guard error.isNotFound else { throw error }
            }
        }
    }

    /// One Consul call in this registrator's datacenter, tried up to three times (A.2) when the
    /// agent is unreachable, busy (429) or failing (5xx); after `ACL not found` the token is read
    /// again before the next try.
    @discardableResult
    func consulCall(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String)] = [],
        scope: ConsulScope? = nil,
        body: FreeFormJSON? = nil,
        allowNotFound: Bool = false
    ) async throws(ConsulError) -> ConsulClient.Response {
        var buffer: ByteBuffer?
        if let body {
            do {
                buffer = ByteBuffer(bytes: try Self.encoder.encode(body))
            } catch {
                throw ConsulError(.malformedBody, endpoint: path, "cannot encode the request: \(error)")
            }
        }
        var attempt = 1
        while true {
            do {
                consulRequests.add(1, ordering: .relaxed)
                return try await consul.send(method, path, query: query + [("dc", datacenter)], scope: scope, body: buffer, allowNotFound: allowNotFound)
            } catch {
                guard attempt < Self.consulAttempts, let delay = retryDelay(error, attempt: attempt) else { throw error }
                if error.isUnknownToken { await refreshToken?() }
                logger.debug("consul call failed; trying again", metadata: ["endpoint": "\(error.endpoint)", "error": "\(error.message)", "attempt": "\(attempt)"])
                try? await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }

    /// consul-api.md §3.4's backoff for what may pass (transport, 429, 5xx, an unknown token that
    /// may have been rotated); nil for what will not (other 4xx).
    func retryDelay(_ error: ConsulError, attempt: Int) -> Duration? {
        switch error.code {
        case .transport, .malformedBody, .missingIndex: break
        case .status(let status) where status == 429 || status >= 500: break
        case .status(403) where error.isUnknownToken && refreshToken != nil: return .zero
        case .status: return nil
        }
        if let retryAfter = error.retryAfter { return .milliseconds(Int(min(retryAfter, 5) * 1000)) }
        let base = 0.25 * Double(1 << (attempt - 1))
        return .milliseconds(Int(Double.random(in: base...(2 * base)) * 1000))
    }
}

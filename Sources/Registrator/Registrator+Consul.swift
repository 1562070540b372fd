import AWSAPI
import ConsulAPI
import Foundation
import NIOCore
import NIOHTTP1

extension Registrator {
    /// How many times a Consul call is tried within one run (docs/DECISIONS.md D56), and a `cas` write after a conflict.
    static let consulAttempts = 3

    /// Keys in order: the same entry is always the same bytes (logs, golden tests).
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Upsert (docs/DECISIONS.md D55): the service-defaults entry by read-modify-write with `cas`, then the catalog
    /// instance (configuration first, so a gateway never sees an instance without Lambda settings).
    func upsert(_ service: DesiredService) async throws(ConsulError) {
        let path = "/v1/config/service-defaults/\(Self.pathSegment(service.name))"
        var written = false
        for _ in 0..<Self.consulAttempts where !written {
            let current = try await consulCall(.GET, path, scope: service.scope, allowNotFound: true)
            var entry: FreeFormJSON?
            var modifyIndex: UInt64 = 0
            if current.status != 404 {
                entry = try ConsulClient.decode(FreeFormJSON.self, current.body, endpoint: path)
                guard case .object? = entry, case .number(let index)? = entry?.value(forCaseInsensitiveKey: "ModifyIndex"), let exact = UInt64(exactly: index) else {
                    throw ConsulError(.malformedBody, endpoint: path, "the entry is not an object with a whole ModifyIndex")
                }
                modifyIndex = exact
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

    /// Delete, in this project's order (docs/DECISIONS.md D57): the instance on the registrator's node (serving stops
    /// at once), the entry if it is a Lambda entry and unchanged since it was read (`cas`: an
    /// operator's concurrent edit wins), then the mTLS data (already missing counts as deleted).
    func delete(_ service: ManagedService) async throws {
        try await consulCall(.PUT, "/v1/catalog/deregister", scope: service.scope, body: .object(["Node": .string(settings.nodeName), "ServiceID": .string(service.name)]))
        if let entry = service.entry, LambdaArguments(entry: entry) != nil {
            let path = "/v1/config/service-defaults/\(Self.pathSegment(service.name))"
            let answer = try await consulCall(.DELETE, path, query: [("cas", String(entry.ModifyIndex))], scope: service.scope)
            if String(buffer: answer.body).trimmingCharacters(in: .whitespacesAndNewlines) == "false" {
                logger.warning("service-defaults entry changed since it was read; kept", metadata: ["service": "\(service.key)"])
            }
        }
        let desired = DesiredService(name: service.name, scope: service.scope, function: service.owner, arguments: LambdaArguments(arn: ""))
        if let parameter = settings.extensionDataName(for: desired) {
            do throws(AWSAPIError) {
                try await aws.ssm.deleteParameter(name: parameter)
            } catch {
                // docs/DECISIONS.md D52: nothing to delete is not a failure.
                guard error.isNotFound else { throw error }
            }
        }
    }

    /// One Consul call in this registrator's datacenter, tried up to three times (docs/DECISIONS.md D56) when the
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
                // Stopping (SIGTERM in `serve`): no more tries.
                guard (try? await Task.sleep(for: delay)) != nil else { throw error }
                attempt += 1
            }
        }
    }

    /// A service name as one path segment: a managed service's name comes from the catalog, where
    /// anyone with `service:write` may have put `/`, `?` or `%` in it.
    static func pathSegment(_ name: String) -> String {
        // A segment of only dots would be a dot segment, which URL handling removes.
        if !name.isEmpty, name.allSatisfy({ $0 == "." }) { return String(repeating: "%2E", count: name.count) }
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/;")
        return name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name
    }

    /// The backoff for what may pass (transport, 429, 5xx, an unknown token that
    /// may have been rotated); nil for what will not (other 4xx).
    func retryDelay(_ error: ConsulError, attempt: Int) -> Duration? {
        switch error.code {
        case .transport, .malformedBody, .missingIndex: break
        case .status(let status) where status == 429 || status >= 500: break
        case .status(403) where error.isUnknownToken && refreshToken != nil: return .zero
        case .status: return nil
        }
        // d = 1 s · 2^(n−1), jittered over [d/2, d]; `Retry-After` is a lower bound; 30 s at most.
        let ceiling = Duration.seconds(1) * (1 << min(max(attempt - 1, 0), 30))
        let wait = max(ceiling / 2 + (ceiling / 2) * Double.random(in: 0...1), error.retryAfter ?? .zero)
        return min(wait, .seconds(30))
    }
}

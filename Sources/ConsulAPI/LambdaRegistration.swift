import Foundation
import NIOCore

/// Registers a Lambda function as a Consul service behind a terminating gateway, the way Consul's
/// documentation describes the manual path: a service-defaults entry with the `builtin/aws/lambda`
/// extension, a catalog instance on the external node `lambdas`, and the service in the gateway's
/// `terminating-gateway` entry (read-modify-write with `cas`). Both directions are idempotent.
public struct LambdaRegistration: Sendable, Hashable {
    public var service: String
    public var functionARN: String
    public var gateway: String
    public var passthrough: Bool
    public var asynchronous: Bool
    /// `envoy` or `apigateway-v2`; `nil` leaves the default (envoy).
    public var payloadFormat: String?
    /// `RESPONSE_STREAM` for a streamed service; `nil` leaves the default (`BUFFERED`) and writes none.
    public var invokeMode: String?
    public var node = "lambdas"

    public init(service: String, functionARN: String, gateway: String, passthrough: Bool = false, asynchronous: Bool = false, payloadFormat: String? = nil) {
        self.service = service
        self.functionARN = functionARN
        self.gateway = gateway
        self.passthrough = passthrough
        self.asynchronous = asynchronous
        self.payloadFormat = payloadFormat
    }

    var serviceDefaults: FreeFormJSON {
        var arguments: [String: FreeFormJSON] = [
            "ARN": .string(functionARN),
            "PayloadPassthrough": .bool(passthrough),
            "InvocationMode": .string(asynchronous ? "asynchronous" : "synchronous"),
        ]
        if let payloadFormat { arguments["PayloadFormat"] = .string(payloadFormat) }
        if let invokeMode { arguments["InvokeMode"] = .string(invokeMode) }
        return .object([
            "Kind": .string("service-defaults"),
            "Name": .string(service),
            "Protocol": .string("http"),
            "EnvoyExtensions": .array([.object(["Name": .string("builtin/aws/lambda"), "Required": .bool(false), "Arguments": .object(arguments)])]),
        ])
    }

    var catalogRegistration: FreeFormJSON {
        .object([
            "Node": .string(node),
            "SkipNodeUpdate": .bool(true),
            "NodeMeta": .object(["external-node": .string("true"), "external-probe": .string("true")]),
            "Service": .object(["ID": .string(service), "Service": .string(service)]),
        ])
    }
}

extension ConsulClient {
    /// How many times a `cas` write of the gateway entry is retried after a concurrent edit.
    static let casAttempts = 20

    public func register(_ registration: LambdaRegistration) async throws(ConsulError) {
        try await putJSON("/v1/config", registration.serviceDefaults)
        try await putJSON("/v1/catalog/register", registration.catalogRegistration)
        try await editGatewayEntry(registration.gateway) { services in
            guard !services.contains(where: { $0.value(forCaseInsensitiveKey: "Name")?.stringValue == registration.service }) else { return false }
            services.append(.object(["Name": .string(registration.service)]))
            return true
        }
    }

    public func deregister(_ registration: LambdaRegistration) async throws(ConsulError) {
        try await editGatewayEntry(registration.gateway) { services in
            let before = services.count
            services.removeAll { $0.value(forCaseInsensitiveKey: "Name")?.stringValue == registration.service }
            return services.count != before
        }
        try await putJSON("/v1/catalog/deregister", .object(["Node": .string(registration.node), "ServiceID": .string(registration.service)]))
        _ = try await send(.DELETE, "/v1/config/service-defaults/\(registration.service)")
    }

    /// Read-modify-write of the `terminating-gateway` entry with `cas`, retried on a concurrent edit.
    /// `edit` returns false when nothing needs writing.
    func editGatewayEntry(_ gateway: String, edit: (inout [FreeFormJSON]) -> Bool) async throws(ConsulError) {
        let path = "/v1/config/terminating-gateway/\(gateway)"
        for _ in 0..<Self.casAttempts {
            let current = try await send(.GET, path, allowNotFound: true)
            var entry: [String: FreeFormJSON] = ["Kind": .string("terminating-gateway"), "Name": .string(gateway)]
            var modifyIndex: UInt64 = 0
            if current.status != 404 {
                guard case .object(let existing) = try Self.decode(FreeFormJSON.self, current.body, endpoint: path) else {
                    throw ConsulError(.malformedBody, endpoint: path, "terminating-gateway entry is not an object")
                }
                entry = existing
                if case .number(let index)? = existing["ModifyIndex"] { modifyIndex = UInt64(index) }
            }
            var services: [FreeFormJSON] = []
            if case .array(let list)? = entry["Services"] { services = list }
            guard edit(&services) else { return }
            entry["Services"] = .array(services)
            entry["CreateIndex"] = nil
            entry["ModifyIndex"] = nil
            let answer = try await putJSON("/v1/config", .object(entry), query: [("cas", String(modifyIndex))])
            if String(buffer: answer.body).trimmingCharacters(in: .whitespacesAndNewlines) == "true" { return }
            // Someone else changed the entry between our read and our write: read again.
        }
        throw ConsulError(.status(409), endpoint: path, "terminating-gateway entry kept changing; gave up after \(Self.casAttempts) attempts")
    }

    @discardableResult
    func putJSON(_ path: String, _ body: FreeFormJSON, query: [(String, String)] = []) async throws(ConsulError) -> Response {
        let data: Data
        do {
            data = try JSONEncoder().encode(body)
        } catch {
            throw ConsulError(.malformedBody, endpoint: path, "cannot encode the request: \(error)")
        }
        return try await send(.PUT, path, query: query, body: ByteBuffer(bytes: data))
    }
}

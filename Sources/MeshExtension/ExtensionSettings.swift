import ConsulAPI
import Foundation
import Logging

/// The extension's environment (docs/COMPATIBILITY.md, The extension), checked in full before anything starts:
/// every error names its variable.
public struct ExtensionSettings: Sendable, Hashable {
    /// `CONSUL_MESH_GATEWAY_URI` without a scheme: host and port of the mesh gateway.
    public var gatewayHost: String
    public var gatewayPort: Int
    /// `CONSUL_EXTENSION_DATA_PREFIX`, without a trailing `/`.
    public var dataPrefix: String
    public var upstreams: [Upstream]
    /// The function's own identity: `CONSUL_SERVICE_NAME` (else `AWS_LAMBDA_FUNCTION_NAME`),
    /// `CONSUL_SERVICE_NAMESPACE`, `CONSUL_SERVICE_PARTITION`.
    public var serviceName: String
    public var serviceNamespace: String
    public var servicePartition: String
    /// `CONSUL_DATACENTER`: the upstreams' default datacenter.
    public var datacenter: String
    public var refreshFrequency: Duration
    public var proxyTimeout: Duration
    public var dialTimeout: Duration
    public var warmConnections: Int
    public var logLevel: Logger.Level
    public var traceEnabled: Bool

    public struct Error: Swift.Error, Hashable, CustomStringConvertible {
        public var variable: String
        public var message: String
        public var description: String { "\(variable): \(message)" }
    }

    public init(environment: [String: String]) throws(Error) {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        func duration(_ name: String, default fallback: Duration) throws(Error) -> Duration {
            guard let text = value(name) else { return fallback }
            do {
                let parsed = try GoDuration.parse(text)
                guard parsed > .zero else { throw Error(variable: name, message: "\"\(text)\" must be more than zero") }
                return parsed
            } catch let error as Error {
                throw error
            } catch {
                throw Error(variable: name, message: "\"\(text)\" is not a duration (e.g. 5m, 3s): \(error)")
            }
        }

        guard var gateway = value("CONSUL_MESH_GATEWAY_URI") else {
            throw Error(variable: "CONSUL_MESH_GATEWAY_URI", message: "is required: host:port of the mesh gateway")
        }
        // docs/DECISIONS.md D71: a scheme is tolerated (the reference dials it as part of the host).
        for scheme in ["tls://", "https://"] where gateway.lowercased().hasPrefix(scheme) {
            gateway = String(gateway.dropFirst(scheme.count))
        }
        if gateway.hasSuffix("/") { gateway.removeLast() }
        guard let colon = gateway.lastIndex(of: ":"), let port = Int(gateway[gateway.index(after: colon)...]), (1...65535).contains(port) else {
            throw Error(variable: "CONSUL_MESH_GATEWAY_URI", message: "\"\(gateway)\" is not host:port")
        }
        var host = String(gateway[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/") else {
            throw Error(variable: "CONSUL_MESH_GATEWAY_URI", message: "\"\(gateway)\" is not host:port")
        }
        gatewayHost = host
        gatewayPort = port

        guard var prefix = value("CONSUL_EXTENSION_DATA_PREFIX") else {
            throw Error(variable: "CONSUL_EXTENSION_DATA_PREFIX", message: "is required: the registrator's Parameter Store prefix")
        }
        while prefix.hasSuffix("/") { prefix.removeLast() }
        guard prefix.hasPrefix("/") else {
            throw Error(variable: "CONSUL_EXTENSION_DATA_PREFIX", message: "\"\(prefix)\" must start with '/'")
        }
        dataPrefix = prefix

        datacenter = value("CONSUL_DATACENTER") ?? "dc1"
        guard Upstream.isLabel(datacenter) else { throw Error(variable: "CONSUL_DATACENTER", message: "\"\(datacenter)\" is not a datacenter name") }
        do {
            upstreams = try Upstream.parseList(value("CONSUL_SERVICE_UPSTREAMS") ?? "", defaultDatacenter: datacenter)
        } catch {
            throw Error(variable: "CONSUL_SERVICE_UPSTREAMS", message: error.description)
        }
        guard let name = value("CONSUL_SERVICE_NAME") ?? value("AWS_LAMBDA_FUNCTION_NAME") else {
            throw Error(variable: "CONSUL_SERVICE_NAME", message: "is required when AWS_LAMBDA_FUNCTION_NAME is not set")
        }
        serviceName = name
        serviceNamespace = value("CONSUL_SERVICE_NAMESPACE") ?? "default"
        servicePartition = value("CONSUL_SERVICE_PARTITION") ?? "default"
        for (variable, text) in [("CONSUL_SERVICE_NAME", serviceName), ("CONSUL_SERVICE_NAMESPACE", serviceNamespace), ("CONSUL_SERVICE_PARTITION", servicePartition)] {
            guard Upstream.isLabel(text) else { throw Error(variable: variable, message: "\"\(text)\" is not a service, namespace or partition name") }
        }

        refreshFrequency = try duration("CONSUL_REFRESH_FREQUENCY", default: .seconds(300))
        // Each read is a signed Parameter Store call: `1ms` would be a thousand a second.
        guard refreshFrequency >= .seconds(1) else {
            throw Error(variable: "CONSUL_REFRESH_FREQUENCY", message: "must be at least 1s")
        }
        proxyTimeout = try duration("CONSUL_EXTENSION_PROXY_TIMEOUT", default: .seconds(3))
        dialTimeout = try duration("CONSUL_EXTENSION_DIAL_TIMEOUT", default: .seconds(5))
        if let text = value("CONSUL_EXTENSION_WARM_CONNECTIONS") {
            guard let count = Int(text), (0...16).contains(count) else {
                throw Error(variable: "CONSUL_EXTENSION_WARM_CONNECTIONS", message: "\"\(text)\" is not a whole number from 0 to 16")
            }
            warmConnections = count
        } else {
            warmConnections = 1
        }
        switch value("LOG_LEVEL")?.lowercased() {
        case nil, "info": logLevel = .info
        case "trace": logLevel = .trace
        case "debug": logLevel = .debug
        case "warn", "warning": logLevel = .warning
        case "error": logLevel = .error
        case let other?: throw Error(variable: "LOG_LEVEL", message: "\"\(other)\" is not one of trace, debug, info, warn, error")
        }
        switch value("TRACE_ENABLED") {
        case nil, "0", "f", "F", "FALSE", "false", "False": traceEnabled = false
        case "1", "t", "T", "TRUE", "true", "True": traceEnabled = true
        case let other?: throw Error(variable: "TRACE_ENABLED", message: "\"\(other)\" is not a boolean")
        }
    }

    /// The Parameter Store name of the function's mTLS data, where the registrator writes it.
    public var parameterName: String {
        "\(dataPrefix)/\(servicePartition)/\(serviceNamespace)/\(serviceName)"
    }
}

import AWSAPI
import Foundation
import Logging

/// The registrator's environment (docs/COMPATIBILITY.md, Environment), read once per execution environment.
/// Consul's own variables (`CONSUL_HTTP_ADDR`, …) are `ConsulConfiguration`'s; AWS's are
/// `AWSServiceConfiguration`'s and the credential chain's.
public struct RegistratorSettings: Sendable, Hashable {
    /// `NODE_NAME`: the external node the catalog instances live on.
    public var nodeName = "lambdas"
    /// `DATACENTER`; empty: the agent's, read from `/v1/agent/self`.
    public var datacenter = ""
    /// `ENTERPRISE`.
    public var enterprise = false
    /// `PARTITIONS` (Enterprise): the admin partitions managed.
    public var partitions: [String] = []
    /// `LOG_LEVEL`.
    public var logLevel: Logger.Level = .info
    /// `CONSUL_HTTP_TOKEN_PATH`: a Parameter Store name holding the Consul token.
    public var tokenParameter: String?
    /// `CONSUL_CACERT_PATH`: a Parameter Store name holding the Consul CA (PEM).
    public var caParameter: String?
    /// `CONSUL_EXTENSION_DATA_PREFIX`: non-empty → mTLS data is managed under it.
    public var extensionDataPrefix: String?
    /// `CONSUL_EXTENSION_DATA_TIER`.
    public var extensionDataTier: ParameterTier?
    /// `PAGE_SIZE`: `ListFunctions`' `MaxItems` (1–50).
    public var pageSize = 50
    /// `MAX_CONCURRENCY`: the bound on concurrent Lambda, SSM and Consul calls (docs/DECISIONS.md D53).
    public var maximumConcurrency = 8

    public struct Error: Swift.Error, Hashable, CustomStringConvertible {
        public var variable: String
        public var message: String
        public var description: String { "\(variable): \(message)" }
    }

    public init() {}

    public init(environment: [String: String]) throws(Error) {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        func flag(_ name: String) throws(Error) -> Bool {
            guard let text = value(name) else { return false }
            // Go's strconv.ParseBool, as the reference reads it.
            switch text {
            case "1", "t", "T", "TRUE", "true", "True": return true
            case "0", "f", "F", "FALSE", "false", "False": return false
            default: throw Error(variable: name, message: "\"\(text)\" is not a boolean (true or false)")
            }
        }
        func integer(_ name: String, _ range: ClosedRange<Int>, default fallback: Int) throws(Error) -> Int {
            guard let text = value(name) else { return fallback }
            guard let number = Int(text), range.contains(number) else {
                throw Error(variable: name, message: "\"\(text)\" is not a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        nodeName = value("NODE_NAME") ?? "lambdas"
        datacenter = value("DATACENTER") ?? ""
        enterprise = try flag("ENTERPRISE")
        partitions = (value("PARTITIONS") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if enterprise && partitions.isEmpty { partitions = ["default"] }
        if let level = value("LOG_LEVEL") {
            switch level.lowercased() {
            case "trace": logLevel = .trace
            case "debug": logLevel = .debug
            case "info": logLevel = .info
            case "warn", "warning": logLevel = .warning
            case "error": logLevel = .error
            default: throw Error(variable: "LOG_LEVEL", message: "\"\(level)\" is not one of trace, debug, info, warn, error")
            }
        }
        tokenParameter = value("CONSUL_HTTP_TOKEN_PATH")
        caParameter = value("CONSUL_CACERT_PATH")
        extensionDataPrefix = value("CONSUL_EXTENSION_DATA_PREFIX").map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        if let prefix = extensionDataPrefix, !prefix.hasPrefix("/") {
            throw Error(variable: "CONSUL_EXTENSION_DATA_PREFIX", message: "\"\(prefix)\" must start with '/' (a Parameter Store path)")
        }
        if let tier = value("CONSUL_EXTENSION_DATA_TIER") {
            guard let parsed = ParameterTier(setting: tier) else {
                throw Error(variable: "CONSUL_EXTENSION_DATA_TIER", message: "\"\(tier)\" is not one of standard, advanced, intelligent-tiering")
            }
            extensionDataTier = parsed
        }
        // ListFunctions accepts MaxItems up to 50.
        pageSize = try integer("PAGE_SIZE", 1...50, default: 50)
        maximumConcurrency = try integer("MAX_CONCURRENCY", 1...256, default: 8)
    }

    /// The Parameter Store name of a service's mTLS data: `<prefix>/<partition>/<namespace>/<name>`.
    public func extensionDataName(for service: DesiredService) -> String? {
        extensionDataPrefix.map { "\($0)/\(service.scope.partition)/\(service.scope.namespace)/\(service.name)" }
    }
}

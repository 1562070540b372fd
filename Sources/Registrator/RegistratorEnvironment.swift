import AWSAPI
import AWSCredentials
import AsyncHTTPClient
import ConsulAPI
import Foundation
import LambdaInvoke
import Logging
import NIOCore

/// Everything one execution environment sets up once (docs/DECISIONS.md D54): settings, the
/// credential chain, the AWS clients, the Consul token and CA from Parameter Store, the Consul
/// client and the datacenter. Any failure here is an init error (the Lambda runtime posts it to
/// `/runtime/init/error`).
public final class RegistratorEnvironment: Sendable {
    public let registrator: Registrator
    let metadataClient: HTTPClient
    let aws: AWSAPIClient
    let consul: ConsulClient
    let files: URL?

    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// How often the token is read again from Parameter Store even without `ACL not found`.
    static let tokenRereadInterval: Duration = .seconds(15 * 60)

    public init(environment: [String: String], group: any EventLoopGroup, logger baseLogger: Logger) async throws {
        let settings: RegistratorSettings
        do {
            settings = try RegistratorSettings(environment: environment)
        } catch {
            throw SetupError(description: error.description)
        }
        var logger = baseLogger
        logger.logLevel = settings.logLevel

        metadataClient = MetadataHTTPClient.make(eventLoopGroup: group)
        let credentials = CredentialCache(chain: .standard(environment: environment, httpClient: metadataClient), logger: logger)
        do {
            aws = try AWSAPIClient(configuration: try AWSServiceConfiguration(environment: environment), credentials: credentials, eventLoopGroup: group, logger: logger)
        } catch {
            try? await metadataClient.shutdown()
            throw SetupError(description: "AWS: \(error)")
        }

        // The token and CA live in Parameter Store; Consul's client reads them from private files,
        // which `refreshToken` rewrites (ConsulClient re-reads its token file after `ACL not found`).
        var overrides: [String: String] = [:]
        var files: URL?
        do {
            if settings.tokenParameter != nil || settings.caParameter != nil {
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lambda-registrator-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                files = folder
            }
            if let name = settings.caParameter, let folder = files {
                let path = folder.appendingPathComponent("consul-ca.pem").path
                try Self.write(try await Self.parameter(aws, name, variable: "CONSUL_CACERT_PATH"), to: path)
                overrides["CONSUL_CACERT"] = path
            }
            if let name = settings.tokenParameter, let folder = files {
                let path = folder.appendingPathComponent("consul-token").path
                try Self.write(try await Self.parameter(aws, name, variable: "CONSUL_HTTP_TOKEN_PATH"), to: path)
                overrides["CONSUL_HTTP_TOKEN_FILE"] = path
                overrides["CONSUL_HTTP_TOKEN"] = ""
            }
            let configuration = try ConsulConfiguration(environment: environment, overrides: overrides)
            consul = try ConsulClient(configuration: configuration, eventLoopGroup: group, logger: logger)
        } catch {
            await aws.shutdown()
            try? await metadataClient.shutdown()
            if let files { try? FileManager.default.removeItem(at: files) }
            throw (error as? SetupError) ?? SetupError(description: "Consul: \(error)")
        }
        self.files = files

        var refresh: (@Sendable () async -> Void)?
        if let name = settings.tokenParameter, let path = overrides["CONSUL_HTTP_TOKEN_FILE"] {
            let reader = TokenReader(aws: aws, consul: consul, parameter: name, path: path, logger: logger)
            refresh = { await reader.refresh() }
        }
        let datacenter: String
        do {
            datacenter = try await Self.datacenter(settings, consul: consul)
        } catch {
            await Self.close(aws: aws, consul: consul, metadata: metadataClient, files: files)
            throw error
        }
        registrator = Registrator(settings: settings, aws: aws, consul: consul, datacenter: datacenter, logger: logger, refreshToken: refresh)
        if let refresh {
            // docs/DECISIONS.md D54: every 15 minutes as well, for a token rotated without being revoked yet.
            Task.detached { [weak self] in
                while (try? await Task.sleep(for: Self.tokenRereadInterval)) != nil, self != nil { await refresh() }
            }
        }
    }

    public func shutdown() async {
        await Self.close(aws: aws, consul: consul, metadata: metadataClient, files: files)
    }

    static func close(aws: AWSAPIClient, consul: ConsulClient, metadata: HTTPClient, files: URL?) async {
        try? await consul.shutdown()
        await aws.shutdown()
        try? await metadata.shutdown()
        if let files { try? FileManager.default.removeItem(at: files) }
    }

    static func parameter(_ aws: AWSAPIClient, _ name: String, variable: String) async throws -> String {
        do {
            return try await aws.ssm.getParameter(name: name, withDecryption: true)
        } catch {
            throw SetupError(description: "\(variable): reading the Parameter Store value \(name) failed: \(error)")
        }
    }

    static func write(_ text: String, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw SetupError(description: "cannot write \(path)")
        }
    }

    /// `DATACENTER`, else the agent's own (`/v1/agent/self`, needs `agent:read`). The agent is asked
    /// either way: one that cannot be reached, or refuses the token, fails the setup.
    static func datacenter(_ settings: RegistratorSettings, consul: ConsulClient) async throws -> String {
        struct AgentSelf: Decodable {
            struct Config: Decodable { var Datacenter: String }
            var Config: Config
        }
        do throws(ConsulError) {
            let (agent, _) = try await consul.get(AgentSelf.self, "/v1/agent/self")
            return settings.datacenter.isEmpty ? agent.Config.Datacenter : settings.datacenter
        } catch let error where error.isPermissionDenied && !settings.datacenter.isEmpty {
            // Reachable, the token is known, only agent:read is missing: DATACENTER says it.
            return settings.datacenter
        } catch  where settings.datacenter.isEmpty {
            throw SetupError(description: "DATACENTER is not set and the agent's datacenter could not be read (/v1/agent/self needs agent:read): \(error)")
        } catch {
            throw SetupError(description: "the Consul agent could not be reached: \(error)")
        }
    }
}

/// Re-reads the Consul token from Parameter Store after `ACL not found`, one read at a time: the
/// concurrent calls that all saw the same 403 share it.
actor TokenReader {
    let aws: AWSAPIClient
    let consul: ConsulClient
    let parameter: String
    let path: String
    let logger: Logger
    var inFlight: Task<Void, Never>?

    init(aws: AWSAPIClient, consul: ConsulClient, parameter: String, path: String, logger: Logger) {
        self.aws = aws
        self.consul = consul
        self.parameter = parameter
        self.path = path
        self.logger = logger
    }

    func refresh() async {
        if let inFlight { return await inFlight.value }
        let task = Task {
            do {
                let token = try await RegistratorEnvironment.parameter(aws, parameter, variable: "CONSUL_HTTP_TOKEN_PATH")
                try RegistratorEnvironment.write(token, to: path)
                // The client caches the file for a minute: the new token goes out at once.
                consul.tokenChanged()
            } catch {
                logger.warning("re-reading the Consul token from Parameter Store failed; keeping the last one", metadata: ["parameter": "\(parameter)", "error": "\(error)"])
            }
        }
        inFlight = task
        await task.value
        inFlight = nil
    }
}

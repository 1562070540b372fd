import ArgumentParser
import ConsulAPI
import Foundation
import GatewayCore
import Logging
import MeshIdentity
import NIOCore
import NIOPosix
import ServiceLifecycle

/// `lambda-gateway run`: the terminating gateway.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the terminating gateway: mesh mTLS in, signed Lambda Invoke out, configuration from Consul (or a static file)."
    )

    @Option(name: .customLong("gateway-name"), help: "The gateway's Consul service name and terminating-gateway entry (else LAMBDA_GATEWAY_NAME, else lambda-gateway).")
    var gatewayName: String?
    @Option(name: .customLong("config"), help: "Serve a static YAML configuration instead of following Consul (format: README). Reloaded on SIGHUP.")
    var configFile: String?
    @Option(help: "mTLS listener HOST:PORT.") var listen = "0.0.0.0:8443"
    @Option(help: "Admin listener HOST:PORT (/ready, /live, /metrics, /config).") var admin = "127.0.0.1:19100"
    @OptionGroup var consul: ConsulOptions
    @Option(help: "The local datacenter (default: from the first leaf certificate).") var datacenter: String?
    @Option(
        name: .customLong("default-intention-policy"),
        help: "allow or deny for callers no intention matches (default: the agent's own, else the X-Consul-Default-ACL-Policy header, else deny).")
    var defaultIntentionPolicy: String?
    @Option(help: "Self-registration: agent (register in the local Consul agent) or none. Default: agent with Consul, none with --config.")
    var register: String?
    @Option(name: .customLong("gateway-service-id"), help: "Service ID for self-registration (default: the gateway name).") var serviceID: String?
    @Option(name: .customLong("advertise-address"), help: "Address registered in Consul (default: the first non-loopback IPv4).") var advertiseAddress: String?
    @Option(name: .customLong("register-recheck"), help: "How often to check that the agent still has this gateway (Go duration).") var registerRecheck = "10s"
    @Option(
        name: .customLong("leaf-refresh-interval"),
        help: "Every linked service's leaf is read from the agent's cache once per interval, 1s to 4m (Go duration); 4m serves a renewed leaf within 5 minutes at about services/240 reads a second."
    )
    var leafRefreshInterval = "4m"
    @OptionGroup var serving: ServingOptions

    /// `--leaf-refresh-interval`, parsed and checked.
    func leafRefreshDuration() throws -> Duration {
        let interval: Duration
        do {
            interval = try GoDuration.parse(leafRefreshInterval)
        } catch {
            throw ValidationError("--leaf-refresh-interval: \(error.description)")
        }
        guard interval >= .seconds(1), interval <= .seconds(240) else {
            throw ValidationError("--leaf-refresh-interval must be 1s to 4m (a renewed leaf is served within 5 minutes), got \(leafRefreshInterval)")
        }
        return interval
    }

    func validate() throws {
        _ = try leafRefreshDuration()
        if let register, !["agent", "none"].contains(register) { throw ValidationError("--register must be agent or none, got \(register)") }
        do {
            _ = try GoDuration.parse(registerRecheck)
        } catch {
            throw ValidationError("--register-recheck: \(error.description)")
        }
        _ = try serving.upstreamListeners()
        _ = try serving.processingSettings()
        _ = try intentionPolicy()
    }

    /// `--default-intention-policy`, checked.
    func intentionPolicy() throws -> IntentionAction? {
        guard let defaultIntentionPolicy else { return nil }
        guard let policy = IntentionAction(rawValue: defaultIntentionPolicy) else {
            throw ValidationError("--default-intention-policy must be allow or deny, got \(defaultIntentionPolicy)")
        }
        return policy
    }

    func run() async throws {
        let logger = serving.makeLogger()
        let hangups = await HangupSignal.trap(logger: logger)
        let name = gatewayName ?? ProcessInfo.processInfo.environment["LAMBDA_GATEWAY_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? "lambda-gateway"
        let runtime = GatewayRuntime(
            listen: try GatewayRuntime.hostPort(listen, flag: "--listen"), admin: try GatewayRuntime.hostPort(admin, flag: "--admin"), options: serving
        )
        let group = ServerEventLoops.make(eventLoops: serving.eventLoops)
        let store = SnapshotStore()
        let metrics = GatewayMetrics()
        let registers = (register ?? (configFile == nil ? "agent" : "none")) == "agent"
        var consulClient: ConsulClient?
        if configFile == nil || registers { consulClient = try consul.client(logger: logger) }

        var sources: [any Service] = []
        if let configFile {
            do {
                _ = try StaticConfigSource(path: configFile, store: store, hangups: hangups, logger: logger)
            } catch {
                await ServerEventLoops.shutdown(group)
                throw StartupError(error.description)
            }
            GatewayRuntime.announce("static configuration \(configFile): \(store.snapshot.services.keys.sorted().joined(separator: ", "))")
        } else if let consulClient {
            var settings = ConsulConfigSource.Settings(gatewayName: name, datacenter: datacenter)
            settings.leafReads.refreshInterval = try leafRefreshDuration()
            settings.defaultIntentionPolicy = try intentionPolicy()
            let source = ConsulConfigSource(client: consulClient, settings: settings, store: store, metrics: metrics, logger: logger)
            sources.append(BackgroundService { await source.run() })
        }
        var registration: (client: ConsulClient, template: GatewayRegistration, recheck: Duration)?
        if registers, let consulClient {
            let address = advertiseAddress ?? GatewayRuntime.firstNonLoopbackIPv4() ?? "127.0.0.1"
            let template = GatewayRegistration(id: serviceID ?? name, name: name, address: address, port: 0, version: LambdaGateway.configuration.version)
            registration = (consulClient, template, try GoDuration.parse(registerRecheck))
        }

        do {
            try await runtime.run(store: store, group: group, logger: logger, metrics: metrics, hangups: hangups, sources: sources, registration: registration)
        } catch {
            try? await consulClient?.shutdown()
            await ServerEventLoops.shutdown(group)
            throw error
        }
        try? await consulClient?.shutdown()
        await ServerEventLoops.shutdown(group)
        GatewayRuntime.announce("stopped")
    }
}

import AWSCredentials
import ArgumentParser
import ConsulAPI
import Foundation
import GatewayCore
import LambdaInvoke
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// `lambda-gateway run`: the terminating gateway.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the terminating gateway: mesh mTLS in, signed Lambda Invoke out, configuration from Consul."
    )

    @Option(name: .customLong("gateway-name"), help: "The gateway's Consul service name (its terminating-gateway config entry).")
    var gatewayName: String

    @Option(help: "mTLS listener HOST:PORT.") var listen = "0.0.0.0:8443"
    @Option(help: "Admin listener HOST:PORT (/ready, /live, /metrics, /config).") var admin = "127.0.0.1:19100"
    @OptionGroup var consul: ConsulOptions
    @Option(help: "The local datacenter (default: from the first leaf certificate).") var datacenter: String?
    @Option(name: .customLong("lambda-endpoint"), help: "Send every Invoke to this endpoint (tests, private endpoints).") var lambdaEndpoint: String?
    @Option(name: .customLong("lambda-ca-file"), help: "Extra PEM trust anchors for the Lambda endpoint.") var lambdaCAFile: String?
    @Option(name: .customLong("request-timeout"), help: "Default per-request deadline (Go duration).") var requestTimeout = "15s"
    @Option(name: .customLong("drain-timeout"), help: "How long in-flight requests may run after SIGTERM.") var drainTimeout = "30s"
    @Option(name: .customLong("event-loops"), help: "Event loop threads (default: cores).") var eventLoops: Int?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.") var logLevel = "info"

    func run() async throws {
        var logger = Logger(label: "lambda-gateway")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let listenAddress = try Self.hostPort(listen, flag: "--listen")
        let adminAddress = try Self.hostPort(admin, flag: "--admin")
        let timeout: Duration
        let drain: Duration
        do {
            timeout = try GoDuration.parse(requestTimeout)
            drain = try GoDuration.parse(drainTimeout)
        } catch {
            throw ValidationError(error.description)
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: eventLoops ?? System.coreCount)
        let consulClient = try consul.client(logger: logger)
        let store = SnapshotStore()
        let source = ConsulConfigSource(client: consulClient, settings: .init(gatewayName: gatewayName, datacenter: datacenter), store: store, logger: logger)
        let aws = try AWSSide(endpoint: lambdaEndpoint, caFile: lambdaCAFile, group: group, logger: logger)
        var settings = ProcessingSettings()
        settings.defaultRequestTimeout = timeout
        let processor = RequestProcessor(store: store, invoker: aws.invoker, settings: settings, logger: logger)
        let refusals = TLSRefusals()
        let acceptor = MeshTLSAcceptor(store: store, refusals: refusals, logger: logger)
        let listener = GatewayListener(host: listenAddress.host, port: listenAddress.port, acceptor: acceptor, processor: processor, group: group, logger: logger, drainTimeout: drain) { address in
            Self.announce("listening on \(address.ipAddress ?? listenAddress.host):\(address.port ?? 0)")
        }
        let adminServer = AdminServer(host: adminAddress.host, port: adminAddress.port, store: store, processor: processor, refusals: refusals, group: group, logger: logger) { address in
            Self.announce("admin on \(address.ipAddress ?? adminAddress.host):\(address.port ?? 0)")
        }

        let services = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: BackgroundService { await source.run() }),
                    .init(service: BackgroundService { await aws.credentials.run() }),
                    .init(service: listener),
                    .init(service: adminServer),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await services.run()
        await aws.shutdown()
        try? await consulClient.shutdown()
        try? await group.shutdownGracefully()
        Self.announce("stopped")
    }

    static func announce(_ line: String) {
        FileHandle.standardOutput.write(Data("lambda-gateway: \(line)\n".utf8))
    }

    static func hostPort(_ text: String, flag: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(flag) must be HOST:PORT, got \(text)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }
}

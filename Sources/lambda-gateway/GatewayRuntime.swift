import AWSSigV4
import ArgumentParser
import ConsulAPI
import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Options `run` and `dev` share: direct listeners, the Lambda side, limits and threads.
struct ServingOptions: ParsableArguments {
    @Option(
        name: .customLong("upstream"),
        help: ArgumentHelp("Direct-invocation listener NAME=HOST:PORT (repeatable): plaintext HTTP to the named service, no mTLS, no intentions.", valueName: "name=host:port"))
    var upstreams: [String] = []
    @Flag(name: .customLong("allow-non-loopback"), help: "Let --upstream listeners bind to non-loopback addresses (they enforce nothing).")
    var allowNonLoopback = false
    @Option(name: .customLong("lambda-endpoint"), help: "Send every Invoke to this endpoint (tests, private endpoints).") var lambdaEndpoint: String?
    @Option(name: .customLong("lambda-ca-file"), help: "Extra trust anchors for the Lambda endpoint (PEM or DER).") var lambdaCAFile: String?
    @Option(name: .customLong("request-timeout"), help: "Default per-request deadline (Go duration).") var requestTimeout = "15s"
    @Option(name: .customLong("drain-timeout"), help: "How long in-flight requests may run after SIGTERM.") var drainTimeout = "30s"
    @Option(name: .customLong("idle-timeout"), help: "Close a client connection with no traffic for this long (Go duration; Envoy's default 1h).") var idleTimeout = "1h"
    @Option(
        name: .customLong("request-headers-timeout"),
        help: "A request's complete head must arrive within this long of its first byte (and a new connection's first request within this long of the handshake).")
    var requestHeadersTimeout = "30s"
    @Option(name: .customLong("client-body-timeout"), help: "The longest pause while reading a request body; a body cut off this way never invokes the function.")
    var clientBodyTimeout = "30s"
    @Option(name: .customLong("send-timeout"), help: "Close a connection whose answers make no write progress for this long, freeing its buffers.")
    var sendTimeout = "60s"
    @Option(
        name: .customLong("trace-sampling"),
        help:
            "honor: a caller's trace sampling decision goes on to the function's X-Ray trace; ignore: the Invoke call says Sampled=? and X-Ray's own rules decide (no caller can force its traces recorded)."
    )
    var traceSampling = "honor"
    @Option(
        name: .customLong("connection-buffer-limit"),
        help: "Answer bytes a connection may hold for a client that does not read; over it, no new request on that connection starts and Lambda answers wait.")
    var connectionBufferLimit = 16 * 1024 * 1024
    @Option(name: .customLong("max-connections"), help: "Client connections per listener; beyond it a new connection is closed at once, existing ones keep working.")
    var maxConnections = 10_000
    @Option(name: .customLong("h2-max-concurrent-streams"), help: "HTTP/2 streams a client may have open on one connection.")
    var h2MaxConcurrentStreams = 100
    @Option(name: .customLong("event-loops"), help: "Event loop threads (default: cores).") var eventLoops: Int?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Option(name: .customLong("access-log-buffer-lines"), help: "Access-log lines that may wait for a slow sink; beyond it lines are dropped and counted, requests never wait.")
    var accessLogBufferLines = 16_384
    @Option(name: .customLong("log-format"), help: "The gateway's own log on standard error: text, or json (one object per line: time, level, message, label, metadata fields).")
    var logFormat = "text"

    struct Upstream {
        var service: String
        var host: String
        var port: Int
    }

    func upstreamListeners() throws -> [Upstream] {
        try upstreams.map { text in
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                throw ValidationError("--upstream must be NAME=HOST:PORT, got \(text)")
            }
            let address = try GatewayRuntime.hostPort(String(text[text.index(after: equals)...]), flag: "--upstream")
            guard allowNonLoopback || GatewayRuntime.isLoopback(address.host) else {
                throw ValidationError(
                    "--upstream \(text): \(address.host) is not a loopback address; a direct listener has no mTLS and no intentions, so binding it beyond this host needs --allow-non-loopback")
            }
            return Upstream(service: String(text[..<equals]), host: address.host, port: address.port)
        }
    }

    func makeLogger() -> Logger {
        var logger = logFormat == "json" ? Logger(label: "lambda-gateway", factory: { JSONLogHandler(label: $0) }) : Logger(label: "lambda-gateway")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }

    /// The limits and timeouts of the flags, each checked; and the drain timeout.
    func processingSettings() throws -> (ProcessingSettings, drain: Duration) {
        guard accessLogBufferLines > 0 else { throw ValidationError("--access-log-buffer-lines must be at least 1, got \(accessLogBufferLines)") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json, got \(logFormat)") }
        func duration(_ text: String, flag: String) throws -> Duration {
            let parsed: Duration
            do {
                parsed = try GoDuration.parse(text)
            } catch {
                throw ValidationError("\(flag): \(error.description)")
            }
            guard parsed > .zero else { throw ValidationError("\(flag) must be more than zero, got \(text)") }
            return parsed
        }
        var settings = ProcessingSettings()
        settings.defaultRequestTimeout = try duration(requestTimeout, flag: "--request-timeout")
        settings.idleTimeout = try duration(idleTimeout, flag: "--idle-timeout")
        settings.requestHeadersTimeout = try duration(requestHeadersTimeout, flag: "--request-headers-timeout")
        settings.clientBodyTimeout = try duration(clientBodyTimeout, flag: "--client-body-timeout")
        settings.sendTimeout = try duration(sendTimeout, flag: "--send-timeout")
        switch traceSampling {
        case "honor": settings.honorCallerSampling = true
        case "ignore": settings.honorCallerSampling = false
        default: throw ValidationError("--trace-sampling must be honor or ignore, got \(traceSampling)")
        }
        let drain = try duration(drainTimeout, flag: "--drain-timeout")
        settings.drainGraceTime = drain
        guard connectionBufferLimit >= 64 * 1024 else { throw ValidationError("--connection-buffer-limit must be at least 65536 bytes, got \(connectionBufferLimit)") }
        settings.connectionBufferLimit = connectionBufferLimit
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be at least 1, got \(maxConnections)") }
        settings.maxConnections = maxConnections
        guard (1...10_000).contains(h2MaxConcurrentStreams) else { throw ValidationError("--h2-max-concurrent-streams must be 1 to 10000, got \(h2MaxConcurrentStreams)") }
        settings.maxConcurrentStreams = h2MaxConcurrentStreams
        return (settings, drain)
    }
}

/// The data plane wired together and run as one service group until SIGTERM/SIGINT: a config source
/// feeding the snapshot store, then optional self-registration, direct listeners, the mesh
/// listener and the admin listener. Graceful shutdown runs in reverse: admin, mesh listener (stop
/// accepting, drain), direct listeners, deregistration, config source.
struct GatewayRuntime {
    var listen: (host: String, port: Int)
    var admin: (host: String, port: Int)
    var options: ServingOptions
    var fixedCredentials: Credentials?
    var announce: @Sendable (String) -> Void = GatewayRuntime.announce

    /// Runs until a signal; `sources` are started first (they feed `store`), `registration` is
    /// registered with the mesh listener's bound port.
    func run(
        store: SnapshotStore,
        group: MultiThreadedEventLoopGroup,
        logger: Logger,
        metrics: GatewayMetrics = GatewayMetrics(),
        hangups: HangupSignal,
        sources: [any Service],
        registration: (client: ConsulClient, template: GatewayRegistration, recheck: Duration)? = nil,
        onMeshBound: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) async throws {
        let upstreams = try options.upstreamListeners()
        let (settings, drain) = try options.processingSettings()
        let aws = try AWSSide(endpoint: options.lambdaEndpoint, caFile: options.lambdaCAFile, caFileSetting: "--lambda-ca-file", group: group, logger: logger, fixedCredentials: fixedCredentials)
        let accessLog = AccessLog(store: store, hangups: hangups, metrics: metrics, logger: logger, bufferLines: options.accessLogBufferLines)
        let processor = RequestProcessor(store: store, invoker: aws.invoker, settings: settings, metrics: metrics, accessLog: accessLog, tracer: RequestProcessor.bootstrappedTracer, logger: logger)
        let acceptor = MeshTLSAcceptor(store: store, metrics: metrics, accessLog: accessLog, logger: logger)
        metrics.sources.withLock { $0 = Self.expositionSources(aws) }
        let (boundPorts, boundPort) = AsyncStream.makeStream(of: Int.self)
        let announce = self.announce
        let listen = self.listen
        let admin = self.admin

        // Shut down in reverse: the access log last, after the listeners drained and wrote their lines.
        var services: [any Service] = [hangups, accessLog] + sources
        if aws.usesCredentialChain { services.append(BackgroundService { await aws.credentials.run() }) }
        if let registration {
            services.append(SelfRegistration(client: registration.client, template: registration.template, boundPort: boundPorts, recheck: registration.recheck, logger: logger))
        }
        for upstream in upstreams {
            services.append(
                GatewayListener(host: upstream.host, port: upstream.port, kind: .direct(service: upstream.service), processor: processor, group: group, logger: logger, drainTimeout: drain) {
                    address in
                    announce("direct listener for \(upstream.service) on \(address.ipAddress ?? upstream.host):\(address.port ?? 0) (plaintext, no intentions)")
                }
            )
        }
        services.append(
            GatewayListener(host: listen.host, port: listen.port, acceptor: acceptor, processor: processor, group: group, logger: logger, drainTimeout: drain) { address in
                announce("listening on \(address.ipAddress ?? listen.host):\(address.port ?? 0)")
                if let port = address.port { boundPort.yield(port) }
                onMeshBound(address)
            }
        )
        services.append(
            AdminServer(host: admin.host, port: admin.port, store: store, processor: processor, group: group, logger: logger) { address in
                announce("admin on \(address.ipAddress ?? admin.host):\(address.port ?? 0)")
            }
        )

        let group = ServiceGroup(
            configuration: .init(services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        defer { boundPort.finish() }
        do {
            try await group.run()
        } catch {
            await aws.shutdown()
            throw error
        }
        await aws.shutdown()
    }

    /// What `/metrics` reads of the AWS side when it is scraped.
    static func expositionSources(_ aws: AWSSide) -> ExpositionSources {
        var sources = ExpositionSources()
        let invoker = aws.invoker
        sources.upstream = { invoker.poolStatistics }
        if aws.usesCredentialChain {
            let credentials = aws.credentials
            sources.credentialRefreshes = { credentials.refreshCounts }
        }
        sources.version = LambdaGateway.configuration.version
        return sources
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

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The first non-loopback IPv4 address of this host (the default `--advertise-address`).
    static func firstNonLoopbackIPv4() -> String? {
        (try? System.enumerateDevices())?.compactMap { device -> String? in
            guard case .v4 = device.address, let ip = device.address?.ipAddress, !ip.hasPrefix("127.") else { return nil }
            return ip
        }.first
    }
}

/// A failure to start that is not a usage mistake: printed as `Error: …` without the usage text.
struct StartupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

import AWSAPI
import AWSCredentials
import AsyncHTTPClient
import Dispatch
import Foundation
import LambdaInvoke
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The extension's lifecycle (README.md, the `lambda-mesh-extension` lifecycle table):
/// 1. the environment is checked (errors: register, then `/init/error` `Extension.ConfigInvalid`);
/// 2. register for `INVOKE` and `SHUTDOWN`;
/// 3. the mTLS data is read and checked (`Extension.DataUnavailable`), then every listener is
///    bound (`Extension.ListenerFailed`), all **before** the first `event/next`;
/// 4. events: `INVOKE` reads the data again when it is due; `SHUTDOWN` stops accepting, lets open
///    tunnels run until 200 ms before the deadline, closes the rest and exits 0;
/// 5. SIGTERM or SIGINT: as `SHUTDOWN` with 500 ms.
public enum ExtensionMain {
    /// Runs the extension to its end; the process's exit status.
    public static func run(name: String, environment: [String: String]) -> Int32 {
        let status = NIOLockedValueBox<Int32>(1)
        let done = DispatchSemaphore(value: 0)
        Task {
            let result = await runAsync(name: name, environment: environment)
            status.withLockedValue { $0 = result }
            done.signal()
        }
        done.wait()
        return status.withLockedValue { $0 }
    }

    static func makeLogger(level: Logger.Level) -> Logger {
        var logger = Logger(label: "lambda-mesh-extension") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = level
        return logger
    }

    public static func runAsync(name: String, environment: [String: String]) async -> Int32 {
        var logger = makeLogger(level: .info)
        guard let runtimeAPI = environment["AWS_LAMBDA_RUNTIME_API"], !runtimeAPI.isEmpty else {
            logger.error("AWS_LAMBDA_RUNTIME_API is not set: this runs as a Lambda extension")
            return 1
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let http = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(2))))
        let metadataClient: HTTPClient
        do {
            metadataClient = MetadataHTTPClient.make(eventLoopGroup: group)
        } catch {
            logger.error("cannot set up an HTTP client: \(error)")
            return 1
        }
        let status = await run(
            name: name, environment: environment, api: ExtensionsAPIClient(runtimeAPI: runtimeAPI, http: http),
            group: group, metadataClient: metadataClient, logger: &logger
        )
        try? await metadataClient.shutdown()
        try? await http.shutdown()
        logger.debug("HTTP clients closed")
        try? await group.shutdownGracefully()
        logger.debug("exiting", metadata: ["status": "\(status)"])
        return status
    }

    static func run(
        name: String, environment: [String: String], api: ExtensionsAPIClient, group: any EventLoopGroup, metadataClient: HTTPClient, logger: inout Logger
    ) async -> Int32 {
        let signals = SignalWatcher()
        let started = ContinuousClock.now
        var phaseStarted = started
        var traceEnabled = false
        /// TRACE_ENABLED: each Init phase's time, at debug level (README.md, the extension's configuration table).
        func phaseDone(_ phase: String) {
            let now = ContinuousClock.now
            if traceEnabled { logger.debug("init phase done", metadata: ["phase": "\(phase)", "ms": "\(milliseconds(now - phaseStarted))"]) }
            phaseStarted = now
        }

        // 1.-2. Configuration, then registration (an error is reported after registering: the
        // platform takes /init/error only from a registered extension).
        let settings: ExtensionSettings
        let registration: ExtensionsAPIClient.Registration
        do {
            settings = try ExtensionSettings(environment: environment)
        } catch {
            logger.error("configuration error: \(error)")
            await reportAfterRegistering(api, name: name, .configInvalid, "\(error)", logger: logger)
            return 1
        }
        logger.logLevel = settings.logLevel
        traceEnabled = settings.traceEnabled
        phaseDone("configuration")
        do {
            registration = try await api.register(name: name)
        } catch {
            logger.error("registering with the Extensions API failed: \(error)")
            return 1
        }
        phaseDone("register")
        let identifier = registration.identifier
        func initFailure(_ type: ExtensionsAPIClient.ErrorType, _ message: String) async -> Int32 {
            logger.error("\(type.rawValue): \(message)")
            try? await api.reportError(identifier: identifier, type: type, message: message, duringInit: true)
            return 1
        }

        // 3. The data, then the listeners, before the first event/next.
        let aws: AWSAPIClient
        do {
            let credentials = CredentialCache(chain: .standard(environment: environment, httpClient: metadataClient), logger: logger)
            var configuration = try AWSServiceConfiguration(environment: environment)
            // A read that hangs must not use up Init: each call gets 2 s, retries within it.
            configuration.callTimeout = .seconds(2)
            aws = try AWSAPIClient(configuration: configuration, credentials: credentials, eventLoopGroup: group, logger: logger)
        } catch {
            return await initFailure(.configInvalid, "AWS: \(error)")
        }
        let dialer = TunnelDialer(settings: settings, eventLoop: group.next(), logger: logger)
        let listeners = UpstreamListeners(dialer: dialer, logger: logger, traceEnabled: settings.traceEnabled)
        let parameter = settings.parameterName
        let upstreams = settings.upstreams
        let data = MeshDataSource(
            frequency: settings.refreshFrequency, logger: logger,
            fetch: { try await aws.ssm.getParameter(name: parameter, withDecryption: true) },
            apply: { tls in dialer.use(tls, upstreams: upstreams) }
        )
        do {
            try await data.load(budget: Self.dataLoadBudget)
            phaseDone("mTLS data")
        } catch {
            await aws.shutdown()
            return await initFailure(.dataUnavailable, "the mTLS data in \(parameter) cannot be used: \(error)")
        }
        do {
            try await listeners.bind(upstreams, timeout: settings.proxyTimeout)
            phaseDone("listeners")
        } catch {
            dialer.stop()
            await aws.shutdown()
            return await initFailure(.listenerFailed, error.description)
        }
        await data.startTimer()
        let ready = ContinuousClock.now - started
        logger.info(
            "ready",
            metadata: [
                "function": "\(registration.functionName)", "service": "\(settings.serviceName)", "upstreams": "\(upstreams.map(\.description))",
                "gateway": "\(settings.gatewayHost):\(settings.gatewayPort)", "initMs": "\(milliseconds(ready))",
            ]
        )

        // 4.-5. Events until SHUTDOWN, or a signal.
        let stop: Stop = await withTaskGroup(of: Stop.self) { group in
            group.addTask { await signals.next() }
            group.addTask {
                while true {
                    do {
                        switch try await api.next(identifier: identifier) {
                        case .invoke:
                            await data.invoked()
                            // Frozen between invocations, spares age past use: new ones now.
                            dialer.renewStaleSpares()
                        case .shutdown(let reason, let deadlineMs):
                            return .shutdown(reason: reason, deadlineMs: deadlineMs)
                        }
                    } catch {
                        return .failure("\(error)")
                    }
                }
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        let budget: Duration
        switch stop {
        case .shutdown(let reason, let deadlineMs):
            // The deadline is a wall-clock time (milliseconds since the epoch); 200 ms are kept for the exit.
            let deadline = Date(timeIntervalSince1970: Double(deadlineMs) / 1000)
            budget = max(.seconds(deadline.timeIntervalSinceNow) - .milliseconds(200), .zero)
            logger.info("SHUTDOWN", metadata: ["reason": "\(reason)", "drainMs": "\(milliseconds(budget))"])
        case .signal(let number):
            budget = .milliseconds(500)
            logger.info("signal \(number): shutting down")
        case .failure(let message):
            budget = .milliseconds(500)
            logger.error("the Extensions API failed: \(message)")
        }
        await listeners.stopAccepting()
        dialer.stop()
        await data.stop()
        await listeners.waitUntilAllClosed(deadline: .now + budget)
        logger.debug("closing open tunnels", metadata: ["open": "\(listeners.openCount)"])
        listeners.closeAll()
        await aws.shutdown()
        logger.debug("AWS client closed")
        if case .failure(let message) = stop {
            try? await api.reportError(identifier: identifier, type: .runtimeFailure, message: message, duringInit: false)
            return 1
        }
        return 0
    }

    /// The initial read's whole budget: Lambda gives an extension's Init 10 s in all, and
    /// `/init/error` must come within it.
    static let dataLoadBudget = Duration.seconds(7)

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    enum Stop: Sendable {
        case shutdown(reason: String, deadlineMs: Int64)
        case signal(Int32)
        case failure(String)
    }

    /// Registers only to report a configuration error, as the platform requires.
    static func reportAfterRegistering(_ api: ExtensionsAPIClient, name: String, _ type: ExtensionsAPIClient.ErrorType, _ message: String, logger: Logger) async {
        do {
            let registration = try await api.register(name: name)
            try await api.reportError(identifier: registration.identifier, type: type, message: message, duringInit: true)
        } catch {
            logger.error("reporting the error to the Extensions API failed: \(error)")
        }
    }
}

/// SIGTERM and SIGINT as an awaitable event (README.md, the `lambda-mesh-extension` lifecycle table).
final class SignalWatcher: @unchecked Sendable {
    // @unchecked: `sources` is set once in init and only kept alive; the state is behind its lock.
    private let sources: [any DispatchSourceSignal]
    private struct State {
        var signal: Int32?
        var waiter: CheckedContinuation<ExtensionMain.Stop, Never>?
        var cancelled = false
    }

    private let received = NIOLockedValueBox(State())

    init() {
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            sources.append(source)
        }
        self.sources = sources
        for (source, number) in zip(sources, [SIGTERM, SIGINT]) {
            source.setEventHandler { [received] in
                let waiter = received.withLockedValue { state -> CheckedContinuation<ExtensionMain.Stop, Never>? in
                    state.signal = state.signal ?? number
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume(returning: .signal(number))
            }
            source.resume()
        }
    }

    /// The first signal; waits for it.
    func next() async -> ExtensionMain.Stop {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let stop = received.withLockedValue { state -> ExtensionMain.Stop? in
                    if let signal = state.signal { return .signal(signal) }
                    if state.cancelled { return .failure("cancelled") }
                    state.waiter = continuation
                    return nil
                }
                if let stop { continuation.resume(returning: stop) }
            }
        } onCancel: {
            let waiter = received.withLockedValue { state in
                state.cancelled = true
                defer { state.waiter = nil }
                return state.waiter
            }
            // Cancelled (SHUTDOWN came first): the group waits for this child, so it ends too.
            waiter?.resume(returning: .failure("cancelled"))
        }
    }
}

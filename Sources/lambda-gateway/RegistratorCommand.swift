import ArgumentParser
import AsyncHTTPClient
import ConsulAPI
import Foundation
import Logging
import NIOPosix
import Registrator
import UnixSignals

/// `lambda-gateway registrator`: mirrors tagged Lambda functions into Consul (README.md, `lambda-gateway registrator`).
/// Configured from the environment exactly as HashiCorp's consul-lambda-registrator (docs/COMPATIBILITY.md, Environment).
struct RegistratorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registrator",
        abstract: "Mirror tagged Lambda functions into Consul (drop-in for consul-lambda-registrator).",
        discussion: """
            Configured from the environment: NODE_NAME, DATACENTER, ENTERPRISE, PARTITIONS, LOG_LEVEL, \
            CONSUL_HTTP_TOKEN_PATH, CONSUL_CACERT_PATH, CONSUL_EXTENSION_DATA_PREFIX, CONSUL_EXTENSION_DATA_TIER, \
            PAGE_SIZE, MAX_CONCURRENCY, the CONSUL_* variables, and AWS's (AWS_REGION, AWS_ENDPOINT_URL[_LAMBDA|_SSM], \
            AWS_CA_BUNDLE, the credential chain).
            """,
        subcommands: [RegistratorSyncCommand.self, RegistratorEventCommand.self, RegistratorServeCommand.self, RegistratorLambdaCommand.self]
    )
}

/// Sets the registrator up once, runs `body`, shuts down; a setup failure is exit 1 with its reason.
func withRegistrator<Result>(_ body: (Registrator) async throws -> Result) async throws -> Result {
    let environment: RegistratorEnvironment
    do {
        environment = try await RegistratorEnvironment(environment: ProcessInfo.processInfo.environment, group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "lambda-registrator"))
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
    do {
        let result = try await body(environment.registrator)
        await environment.shutdown()
        return result
    } catch {
        await environment.shutdown()
        throw error
    }
}

/// The summary on stderr (and the JSON on stdout); exit 1 when the run failed as a whole.
func finish(_ report: SyncReport, json: Bool) throws {
    FileHandle.standardError.write(Data("registrator: \(report.summary)\n".utf8))
    if json { print(report.json) }
    if report.failed { throw ExitCode(1) }
}

struct RegistratorSyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "One full sync, then exit (non-zero only for an error not tied to one function)."
    )

    @Flag(help: "Print the result as one JSON object on stdout: listed, upserted, deleted, skipped, errors.") var json = false

    func run() async throws {
        let report = try await withRegistrator { await $0.fullSync() }
        try finish(report, json: json)
    }
}

struct RegistratorEventCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event",
        abstract: "Handle one EventBridge event (aws.events: full sync; aws.lambda CloudTrail: that function)."
    )

    @Argument(help: "The event's JSON file, or - for standard input.") var file: String
    @Flag(help: "Print the result as one JSON object on stdout.") var json = false

    func run() async throws {
        let bytes: [UInt8]
        if file == "-" {
            bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
        } else {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read the event file \(file)") }
            bytes = Array(data)
        }
        let event: RegistratorEvent
        do {
            event = try RegistratorEvent(json: bytes)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let report = try await withRegistrator { await $0.handle(event) }
        try finish(report, json: json)
    }
}

struct RegistratorServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Full sync at start and every interval until SIGTERM or SIGINT."
    )

    @Option(help: "Time between full syncs (a Go duration: 30s, 10m).") var interval = "10m"

    func run() async throws {
        let period: Duration
        do {
            period = try GoDuration.parse(interval)
        } catch {
            throw ValidationError("--interval: \(error)")
        }
        guard period >= .seconds(1) else { throw ValidationError("--interval must be at least 1s, got \(interval)") }
        try await withRegistrator { registrator in
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { return }
                }
                group.addTask {
                    while !Task.isCancelled {
                        let report = await registrator.fullSync()
                        FileHandle.standardError.write(Data("registrator: \(report.summary)\n".utf8))
                        try? await Task.sleep(for: period)
                    }
                }
                // The first to end is the signal: stop the loop (a sync in flight ends at its next call).
                await group.next()
                group.cancelAll()
            }
        }
    }
}

struct RegistratorLambdaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lambda",
        abstract: "Run as a Lambda custom runtime (the bootstrap of scripts/package-registrator.sh)."
    )

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let runtimeAPI = environment["AWS_LAMBDA_RUNTIME_API"], !runtimeAPI.isEmpty else {
            throw ValidationError("AWS_LAMBDA_RUNTIME_API is not set: this mode runs inside Lambda (or a Runtime API emulator)")
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let logger = Logger(label: "lambda-registrator")
        let http = HTTPClient(eventLoopGroupProvider: .shared(group))
        let loop = LambdaRuntimeLoop(runtimeAPI: runtimeAPI, http: http, logger: logger)
        do {
            try await loop.run { try await RegistratorEnvironment(environment: environment, group: group, logger: logger) }
        } catch {
            try? await http.shutdown()
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        try? await http.shutdown()
    }
}

import Foundation
import NIOCore
import NIOPosix

/// moto's server (from PyPI) on 127.0.0.1, prepared by `scripts/moto_fixture.py` with IAM users, a
/// role with temporary credentials and a function, then with IAM authentication switched on so that
/// it checks every signature. It runs through `scripts/moto_server_aws.py`, which makes moto check a
/// signature against the request as sent (moto alone fails every GET and every encoded ARN path)
/// and page ListFunctions and ListAliases as Lambda does.
public final class MotoServer: Sendable {
    public struct Fixture: Decodable, Sendable {
        public struct Keys: Decodable, Sendable {
            public var access_key_id: String
            public var secret_access_key: String
            public var session_token: String?
        }

        public var function_name: String
        public var function_arn: String
        /// Allowed to invoke.
        public var user: Keys
        public var temporary: Keys
        /// Allowed the registrator's Lambda reads and Parameter Store calls (README.md, the registrator's IAM policy).
        public var registrator: Keys
        /// Allowed everything: test setup once authentication is on (`lambdaCommands`).
        public var admin: Keys
        /// The execution role of the functions `lambdaCommands` creates.
        public var role_arn: String
    }

    /// What `scripts/moto_functions.py` prints: the ARNs of the functions and aliases it created.
    public struct LambdaCommandsResult: Decodable, Sendable {
        public var arns: [String: String]
        public var aliases: [String: String]
    }

    public let port: Int
    public let fixture: Fixture
    private let process: Process

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    public init() async throws {
        port = try await Self.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.packageRoot.appendingPathComponent("scripts/moto_server_aws.py").path, "-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw TestSupportError("cannot start moto_server (run scripts/install-test-tools.sh): \(error)")
        }
        self.process = process
        do {
            try await Self.waitUntilListening(port: port, process: process)
            let output = try await Self.run(["python3", Self.packageRoot.appendingPathComponent("scripts/moto_fixture.py").path, "http://127.0.0.1:\(port)"])
            fixture = try JSONDecoder().decode(Fixture.self, from: Data(output.utf8))
        } catch {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw error
        }
    }

    /// Applies `scripts/moto_functions.py` commands (a JSON list: create, tag, untag, alias, delete)
    /// with the admin keys, and returns what it prints.
    public func lambdaCommands(_ json: String) async throws -> String {
        var environment = ProcessInfo.processInfo.environment
        environment["MOTO_ADMIN_ACCESS_KEY_ID"] = fixture.admin.access_key_id
        environment["MOTO_ADMIN_SECRET_ACCESS_KEY"] = fixture.admin.secret_access_key
        environment["MOTO_ROLE_ARN"] = fixture.role_arn
        let arguments = ["python3", Self.packageRoot.appendingPathComponent("scripts/moto_functions.py").path, endpoint]
        let output = try await ChildProcess.run(arguments, environment: environment, input: json)
        guard output.status == 0 else {
            throw TestSupportError("moto_functions.py failed: \(output.stderr)")
        }
        return output.stdout
    }

    /// `lambdaCommands`, its output decoded.
    public func applyLambdaCommands(_ json: String) async throws -> LambdaCommandsResult {
        try JSONDecoder().decode(LambdaCommandsResult.self, from: Data(try await lambdaCommands(json).utf8))
    }

    /// SIGKILL: a child of the test process inherits its blocked signal mask, so SIGTERM would not
    /// reach it.
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }

    public static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }

    static func waitUntilListening(port: Int, process: Process) async throws {
        for _ in 0..<300 {
            guard process.isRunning else { throw TestSupportError("moto_server exited at start (is it installed? scripts/install-test-tools.sh)") }
            if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get() {
                try? await channel.close()
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("moto_server did not listen on 127.0.0.1:\(port) within 30 s")
    }

    /// Runs a command and returns its standard output; a non-zero exit is an error with its stderr.
    public static func run(_ arguments: [String]) async throws -> String {
        let output = try await ChildProcess.run(arguments)
        guard output.status == 0 else {
            throw TestSupportError("\(arguments.joined(separator: " ")) failed: \(output.stderr)")
        }
        return output.stdout
    }
}

/// Runs a program to completion on a thread of its own, so that waiting for it never blocks the
/// concurrency pool that the in-process test servers answer on.
public enum ChildProcess {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// `arguments[0]` is looked up on PATH unless it is a path. `input`, if any, is the standard input.
    public static func run(_ arguments: [String], environment: [String: String]? = nil, input: String? = nil) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try runBlocking(arguments, environment: environment, input: input) })
            }
        }
    }

    static func runBlocking(_ arguments: [String], environment: [String: String]?, input: String? = nil) throws -> Output {
        let process = Process()
        if arguments[0].hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: arguments[0])
            process.arguments = Array(arguments.dropFirst())
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
        }
        if let environment { process.environment = environment }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let inputPipe = input.map { _ in Pipe() }
        if let inputPipe { process.standardInput = inputPipe }
        try process.run()
        if let input, let inputPipe {
            // Small inputs only: written whole before the output is read.
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try inputPipe.fileHandleForWriting.close()
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus,
            stdout: String(decoding: data, as: UTF8.self),
            stderr: String(decoding: errorData, as: UTF8.self)
        )
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

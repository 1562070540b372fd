import ArgumentParser
import ConsulAPI
import Foundation
import LambdaInvoke
import Logging
import NIOPosix

/// Consul agent options shared by the commands that talk to Consul.
struct ConsulOptions: ParsableArguments {
    @Option(name: .customLong("consul-addr"), help: "Consul agent address (else CONSUL_HTTP_ADDR, else 127.0.0.1:8500).")
    var address: String?

    @Option(name: .customLong("consul-token"), help: "ACL token (else CONSUL_HTTP_TOKEN_FILE / CONSUL_HTTP_TOKEN).")
    var token: String?

    @Option(
        name: .customLong("consul-max-connections"),
        help: "Connections to the Consul agent at most, 1-\(ConsulConfiguration.maximumConnectionsLimit) (the agent allows 200 per client IP by default)."
    )
    var maximumConnections = ConsulConfiguration.defaultMaximumConnections

    mutating func validate() throws {
        guard (1...ConsulConfiguration.maximumConnectionsLimit).contains(maximumConnections) else {
            throw ValidationError("--consul-max-connections must be 1 to \(ConsulConfiguration.maximumConnectionsLimit), got \(maximumConnections)")
        }
    }

    func client(logger: Logger) throws -> ConsulClient {
        var overrides: [String: String] = [:]
        overrides["CONSUL_HTTP_ADDR"] = address
        if let token {
            // A flag wins over both variables; an empty override hides the token file.
            overrides["CONSUL_HTTP_TOKEN"] = token
            overrides["CONSUL_HTTP_TOKEN_FILE"] = ""
        }
        var configuration: ConsulConfiguration
        do {
            configuration = try ConsulConfiguration(environment: ProcessInfo.processInfo.environment, overrides: overrides)
        } catch {
            throw ValidationError(error.description)
        }
        configuration.maximumConnections = maximumConnections
        return try ConsulClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
    }
}

/// `lambda-gateway register`: the manual registration path of Consul's documentation.
struct RegisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Register a Lambda function as a Consul service served by a terminating gateway.",
        discussion:
            "Writes the service-defaults entry (builtin/aws/lambda), a catalog instance on node 'lambdas', and the service in the gateway's terminating-gateway entry (cas, so concurrent edits are kept). Idempotent."
    )

    @Argument(help: "The function ARN.") var functionARN: String
    @Option(help: "The terminating gateway's name.") var gateway: String
    @Option(help: "The Consul service name (default: the function name).") var service: String?
    @Flag(help: "Send the client body to Lambda unchanged.") var passthrough = false
    @Flag(name: .customLong("async"), help: "Invoke asynchronously (InvocationType Event).") var asynchronous = false
    @Option(name: .customLong("payload-format"), help: "envoy or apigateway-v2.") var payloadFormat: String?
    @Option(name: .customLong("invoke-mode"), help: "BUFFERED (the default) or RESPONSE_STREAM: answers relayed as the function writes them (InvokeWithResponseStream).")
    var invokeMode: String?
    @OptionGroup var consul: ConsulOptions

    func validate() throws {
        _ = try streamed()
    }

    /// Whether `--invoke-mode` asks for streaming.
    private func streamed() throws -> Bool {
        guard let invokeMode else { return false }
        guard let mode = InvokeMode(configValue: invokeMode) else { throw ValidationError("--invoke-mode must be BUFFERED or RESPONSE_STREAM") }
        if mode == .responseStream && asynchronous { throw ValidationError("--invoke-mode RESPONSE_STREAM cannot be used with --async") }
        return mode == .responseStream
    }

    func run() async throws {
        var registration = try makeRegistration(functionARN: functionARN, gateway: gateway, service: service, passthrough: passthrough, asynchronous: asynchronous, payloadFormat: payloadFormat)
        if try streamed() { registration.invokeMode = InvokeMode.responseStream.rawValue }
        try await withConsul(consul) { client throws(ConsulError) in try await client.register(registration) }
        print("registered \(registration.service) (\(registration.functionARN)) behind \(registration.gateway)")
    }
}

/// `lambda-gateway deregister`: undoes `register`.
struct DeregisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deregister", abstract: "Undo `register`: remove the service from the gateway, the catalog and its service-defaults. Idempotent.")

    @Argument(help: "The function ARN.") var functionARN: String
    @Option(help: "The terminating gateway's name.") var gateway: String
    @Option(help: "The Consul service name (default: the function name).") var service: String?
    @OptionGroup var consul: ConsulOptions

    func run() async throws {
        let registration = try makeRegistration(functionARN: functionARN, gateway: gateway, service: service, passthrough: false, asynchronous: false, payloadFormat: nil)
        try await withConsul(consul) { client throws(ConsulError) in try await client.deregister(registration) }
        print("deregistered \(registration.service) from \(registration.gateway)")
    }
}

func makeRegistration(functionARN: String, gateway: String, service: String?, passthrough: Bool, asynchronous: Bool, payloadFormat: String?) throws -> LambdaRegistration {
    let arn: FunctionARN
    do {
        arn = try FunctionARN(parsing: functionARN)
    } catch {
        throw ValidationError(error.description)
    }
    if let payloadFormat, !["envoy", "apigateway-v2"].contains(payloadFormat.lowercased()) {
        throw ValidationError("--payload-format must be envoy or apigateway-v2")
    }
    return LambdaRegistration(
        service: service ?? arn.functionName,
        functionARN: arn.description,
        gateway: gateway,
        passthrough: passthrough,
        asynchronous: asynchronous,
        payloadFormat: payloadFormat?.lowercased()
    )
}

func withConsul(_ options: ConsulOptions, _ body: (ConsulClient) async throws(ConsulError) -> Void) async throws {
    var logger = Logger(label: "lambda-gateway")
    logger.logLevel = .warning
    let client = try options.client(logger: logger)
    do {
        try await body(client)
    } catch {
        try? await client.shutdown()
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
    try await client.shutdown()
}

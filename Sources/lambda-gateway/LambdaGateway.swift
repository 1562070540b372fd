import ArgumentParser

/// The command tree; `main.swift` is the entry point.
struct LambdaGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lambda-gateway",
        abstract: "A Consul service-mesh terminating gateway for AWS Lambda.",
        version: "0.1.0",
        subcommands: [RunCommand.self, DevCommand.self, InvokeCommand.self, RegisterCommand.self, DeregisterCommand.self, RegistratorCommand.self]
    )

    /// Runs the command line. Packaged as a Lambda custom runtime (scripts/package-registrator.sh),
    /// the binary is `bootstrap` and Lambda starts it without arguments.
    static func run(arguments: [String]) async {
        if arguments.count == 1, arguments[0].hasSuffix("/bootstrap") || arguments[0] == "bootstrap" {
            await main(["registrator", "lambda"])
            return
        }
        await main(nil)
    }
}

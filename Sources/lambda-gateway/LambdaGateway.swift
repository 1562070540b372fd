import ArgumentParser

@main
struct LambdaGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lambda-gateway",
        abstract: "A Consul service-mesh terminating gateway for AWS Lambda.",
        version: "0.1.0",
        subcommands: [RunCommand.self, DevCommand.self, InvokeCommand.self, RegisterCommand.self, DeregisterCommand.self]
    )

    static func main() async {
        // Before any task runs: the serving commands run Swift concurrency on their event loops.
        _ = ServerEventLoops.shared
        await main(nil)
    }
}

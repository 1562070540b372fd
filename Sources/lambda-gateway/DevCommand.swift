import ArgumentParser
import DevMode
import Foundation
import GatewayCore
import LambdaInvoke
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// `lambda-gateway dev`: the whole path on one machine, no Consul and no AWS account. An ephemeral
/// Consul-style CA, a static configuration written to a directory (the same file `run --config`
/// reads), an embedded Lambda endpoint that checks SigV4, and ready-to-paste curl commands.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run the gateway with an embedded CA, config and Lambda endpoint, and print curl commands that call it through mTLS."
    )

    @Option(help: "mTLS listener HOST:PORT.") var listen = "127.0.0.1:8443"
    @Option(help: "Admin listener HOST:PORT.") var admin = "127.0.0.1:19100"
    @Option(help: "Where the CA, client certificates and gateway.yaml are written (default: a lambda-gateway-dev directory in the temporary directory).")
    var dir: String?
    @Option(name: .customLong("function"), help: ArgumentHelp("Serve this real function instead of the demos (repeatable): NAME=ARN. Uses the normal AWS credential chain.", valueName: "name=arn"))
    var functions: [String] = []
    @OptionGroup var serving: ServingOptions

    struct DemoService {
        var name: String
        var arn: String
        var format: String
        var example: (path: String, extra: String)
        var invokeMode = "BUFFERED"
    }

    func validate() throws {
        _ = try serving.upstreamListeners()
        _ = try demoServices()
        _ = try serving.processingSettings()
    }

    func demoServices() throws -> [DemoService] {
        guard !functions.isEmpty else {
            return [
                DemoService(
                    name: "echo", arn: "arn:aws:lambda:us-east-1:000000000000:function:echo", format: "envoy",
                    example: ("/orders/42?verbose=true", #" -H 'content-type: application/json' -d '{"hello":"mesh"}'"#)),
                DemoService(name: "greeting", arn: "arn:aws:lambda:us-east-1:000000000000:function:greeting", format: "apigateway-v2", example: ("/greet?name=Ada", "")),
                DemoService(
                    name: "countdown", arn: "arn:aws:lambda:us-east-1:000000000000:function:countdown", format: "envoy", example: ("/events?n=5&delay_ms=500", " -N"),
                    invokeMode: "RESPONSE_STREAM"
                ),
            ]
        }
        return try functions.map { text in
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { throw ValidationError("--function must be NAME=ARN, got \(text)") }
            let arn = String(text[text.index(after: equals)...])
            do {
                _ = try FunctionARN(parsing: arn)
            } catch {
                throw ValidationError("--function \(text): \(error)")
            }
            return DemoService(name: String(text[..<equals]), arn: arn, format: "envoy", example: ("/", ""))
        }
    }

    func run() async throws {
        let logger = serving.makeLogger()
        let hangups = await HangupSignal.trap(logger: logger)
        let say: @Sendable (String) -> Void = { line in FileHandle.standardOutput.write(Data("\(line)\n".utf8)) }
        let demos = try demoServices()
        let embedded = functions.isEmpty && serving.lambdaEndpoint == nil
        let directory = URL(fileURLWithPath: dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("lambda-gateway-dev").path)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        // 1. CA, leaves, and the static configuration file.
        let ca = try DevCertificateAuthority()
        let files = try DevFiles.write(ca: ca, services: demos.map { ($0.name, $0.arn, $0.format, $0.invokeMode) }, caller: "web", denied: "intruder", to: directory)
        say("lambda-gateway dev")
        say("  [ok] CA         trust domain \(ca.trustDomain), files in \(directory.path)")

        let group = ServerEventLoops.make(eventLoops: serving.eventLoops)
        let store = SnapshotStore()
        do {
            _ = try StaticConfigSource(path: files.config, store: store, hangups: hangups, logger: logger)
        } catch {
            await ServerEventLoops.shutdown(group)
            throw StartupError(error.description)
        }
        say("  [ok] config     \(files.config) (\(demos.count) services, intentions allow web, default deny)")

        // 2. The Lambda side: embedded endpoint, a given endpoint, or AWS.
        var options = serving
        var sources: [any Service] = []
        if embedded {
            let endpoint = try await DevLambdaEndpoint.bind(group: group, logger: logger)
            options.lambdaEndpoint = endpoint.url
            sources.append(endpoint)
            say("  [ok] lambda     \(endpoint.url) (functions: \(DevFunction.allCases.map(\.rawValue).joined(separator: ", ")); SigV4 checked with dev credentials)")
        } else {
            say("  [ok] lambda     \(serving.lambdaEndpoint ?? "AWS") with the standard credential chain")
        }

        let listenAddress = try GatewayRuntime.hostPort(listen, flag: "--listen")
        var runtime = GatewayRuntime(listen: listenAddress, admin: try GatewayRuntime.hostPort(admin, flag: "--admin"), options: options)
        runtime.fixedCredentials = embedded ? DevLambdaEndpoint.credentials : nil
        runtime.announce = { line in say("  [ok] \(line)") }
        let snapshot = store.snapshot
        let printer: @Sendable (SocketAddress) -> Void = { address in
            let port = address.port ?? listenAddress.port
            let connectHost = GatewayRuntime.isLoopback(listenAddress.host) || listenAddress.host == "0.0.0.0" ? "127.0.0.1" : listenAddress.host
            Task {
                await Self.selfCheck(demos: demos, snapshot: snapshot, files: files, host: connectHost, port: port, group: group, say: say)
                say("\nTry it (each command is complete; copy and paste):")
                for demo in demos {
                    guard let sni = snapshot.services[demo.name]?.snis.first else { continue }
                    if demo.invokeMode == "RESPONSE_STREAM" {
                        say("\n  # \(demo.name): streamed (InvokeWithResponseStream), caller web (allowed): the events arrive one by one as the function writes them")
                    } else {
                        say("\n  # \(demo.name): \(demo.format) payload format, caller web (allowed)")
                    }
                    say("  " + files.curl(sni: sni, port: port, host: connectHost, caller: "web", path: demo.example.path) + demo.example.extra)
                }
                if let first = demos.first, let sni = snapshot.services[first.name]?.snis.first {
                    say("\n  # \(first.name) again, caller intruder: no intention allows it, so 403 RBAC: access denied")
                    say("  " + files.curl(sni: sni, port: port, host: connectHost, caller: "intruder", path: "/"))
                }
                say("\nThe same setup without dev mode: lambda-gateway run --config \(files.config) --register none --lambda-endpoint ...")
                say("Serving until Ctrl-C.\n")
            }
        }
        do {
            try await runtime.run(store: store, group: group, logger: logger, hangups: hangups, sources: sources, onMeshBound: printer)
        } catch {
            await ServerEventLoops.shutdown(group)
            throw error
        }
        await ServerEventLoops.shutdown(group)
        say("lambda-gateway dev: stopped")
    }

    /// One call per service as the allowed caller and one as the denied caller, through the real
    /// listener with mTLS, reported as status lines.
    static func selfCheck(demos: [DemoService], snapshot: GatewaySnapshot, files: DevFiles, host: String, port: Int, group: any EventLoopGroup, say: @Sendable (String) -> Void) async {
        func read(_ name: String) -> String { (try? String(contentsOf: files.directory.appendingPathComponent(name), encoding: .utf8)) ?? "" }
        let caPEM = read("ca.pem")
        var checks = demos.map { ($0.name, "web", $0.example.path, 200) }
        if let first = demos.first { checks.append((first.name, "intruder", "/", 403)) }
        for (service, caller, path, expected) in checks {
            guard let sni = snapshot.services[service]?.snis.first else { continue }
            let start = ContinuousClock.now
            do {
                let answer = try await DevSelfCheck.call(
                    host: host, port: port, sni: sni, caPEM: caPEM, certificatePEM: read("\(caller).pem"), keyPEM: read("\(caller)-key.pem"), path: path, group: group
                )
                let elapsed = (ContinuousClock.now - start).formatted(.units(allowed: [.milliseconds], width: .narrow))
                let mark = answer.status == expected ? "[ok]" : "[!!]"
                say("  \(mark) self-check  \(service) as \(caller): \(answer.status) in \(elapsed): \(answer.body.prefix(80).replacingOccurrences(of: "\n", with: " "))")
            } catch {
                say("  [!!] self-check  \(service) as \(caller): \(error)")
            }
        }
    }
}

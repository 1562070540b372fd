import Foundation
import TestSupport
import Testing

/// `lambda-gateway dev`: starts with nothing but itself, prints curl commands that work as printed,
/// and stops cleanly on Ctrl-C or SIGTERM.
@Suite("lambda-gateway dev", .serialized)
struct DevCommandTests {
    static func withDev(_ extra: [String] = [], _ body: (RunningProcess, [String]) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        // No AWS credentials and no Consul in the environment: dev mode needs neither.
        let dev = try RunningProcess(
            [CLI.executable.path, "dev", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--dir", directory.url.path] + extra,
            environment: ["HOME": "/nonexistent", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        )
        try await withTeardown {
            _ = try await dev.waitForLine(containing: "Serving until Ctrl-C")
            let commands = dev.output.map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("curl ") }
            try await body(dev, commands)
        } teardown: {
            dev.stop()
            directory.remove()
        }
    }

    @Test func thePrintedCurlCommandsWorkAsPrintedAndCtrlCStopsIt() async throws {
        try await Self.withDev { dev, commands in
            #expect(commands.count == 4, "\(dev.output.joined(separator: "\n"))")
            #expect(dev.output.contains { $0.contains("[ok] CA") } && dev.output.contains { $0.contains("[ok] lambda") } && dev.output.contains { $0.contains("[ok] listening on") })
            // Its own calls at start: the three services as web, echo as intruder (refused).
            let checks = dev.output.filter { $0.contains("self-check") }
            #expect(checks.count == 4 && checks.allSatisfy { $0.contains("[ok]") }, "\(checks)")
            #expect(checks.last?.contains("as intruder: 403") == true)
            var answers: [ChildProcess.Output] = []
            for command in commands {
                answers.append(try await ChildProcess.run(["sh", "-c", command]))
            }
            try #require(answers.count == 4)
            // curl offers ALPN h2 and every service speaks HTTP/2 (docs/DECISIONS.md D22).
            // echo: the Envoy-format event the gateway built, signed and sent, returned verbatim.
            #expect(answers[0].status == 0 && answers[0].stdout.hasPrefix("HTTP/2 200"), "\(answers[0].stdout) \(answers[0].stderr)")
            #expect(answers[0].stdout.contains(#""raw_path":"/orders/42?verbose=true""#) && answers[0].stdout.contains(#""body":"{\"hello\":\"mesh\"}""#))
            #expect(answers[0].stdout.contains("URI=spiffe://") && answers[0].stdout.contains("/svc/web"), "the caller's identity reached the function")
            // greeting: API Gateway v2 format, query parameter read by the function.
            #expect(answers[1].stdout.hasPrefix("HTTP/2 200") && answers[1].stdout.contains(#"{"greeting":"Hello, Ada!","function":"greeting"}"#), "\(answers[1].stdout)")
            // countdown: streamed (InvokeWithResponseStream); its head from the function's prelude.
            #expect(answers[2].status == 0 && answers[2].stdout.hasPrefix("HTTP/2 200") && answers[2].stdout.contains("content-type: text/event-stream"), "\(answers[2].stdout)")
            #expect(answers[2].stdout.hasSuffix("data: tick 1 of 5\n\ndata: tick 2 of 5\n\ndata: tick 3 of 5\n\ndata: tick 4 of 5\n\ndata: tick 5 of 5\n\n"))
            #expect(commands[2].contains(" -N"), "curl shows each event as it arrives")
            // intruder: the intention check refuses it.
            #expect(answers[3].stdout.hasPrefix("HTTP/2 403") && answers[3].stdout.hasSuffix("RBAC: access denied"), "\(answers[3].stdout)")

            let start = ContinuousClock.now
            dev.signal(SIGINT)
            #expect(await dev.waitForExit(timeout: .seconds(5)) == 0)
            #expect(ContinuousClock.now - start < .seconds(5))
            // stdout and stderr (the log) are read by separate pipes, so only the status line's
            // presence is certain, not its place after the last log line.
            #expect(dev.output.contains("lambda-gateway dev: stopped"), "\(dev.output.suffix(3))")
        }
    }

    @Test func theWrittenConfigIsTheStaticFormatAndSIGTERMStopsIt() async throws {
        try await Self.withDev(["--upstream", "greeting=127.0.0.1:0"]) { dev, _ in
            let config = try #require(dev.output.first { $0.contains("[ok] config") }?.split(separator: " ").first { $0.hasSuffix("gateway.yaml") })
            let text = try String(contentsOfFile: String(config), encoding: .utf8)
            #expect(text.contains("payloadFormat: apigateway-v2") && text.contains("- source: web"))
            // The direct listener reaches the embedded endpoint too, without any certificate.
            let line = try await dev.waitForLine(containing: "direct listener for greeting")
            let port = try #require(line.range(of: "127.0.0.1:").map { String(line[$0.upperBound...].prefix { $0.isNumber }) })
            let direct = try await ChildProcess.run(["curl", "-sS", "http://127.0.0.1:\(port)/?name=direct"])
            #expect(direct.stdout == #"{"greeting":"Hello, direct!","function":"greeting"}"#, "\(direct.stdout) \(direct.stderr)")

            // SIGHUP (systemctl reload, logrotate) never stops it: the file is read again.
            dev.signal(SIGHUP)
            _ = try await dev.waitForLine(containing: "SIGHUP received")
            #expect(try await ChildProcess.run(["curl", "-sS", "http://127.0.0.1:\(port)/?name=again"]).stdout.contains("Hello, again!"))

            dev.signal(SIGTERM)
            #expect(await dev.waitForExit(timeout: .seconds(5)) == 0)
        }
    }
}

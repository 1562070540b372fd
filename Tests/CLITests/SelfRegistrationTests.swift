import Foundation
import TestSupport
import Testing

/// `run --register agent` against the Consul API test server: registration with the bound port,
/// re-registration when the agent forgets, deregistration on SIGTERM, and two instances of one
/// gateway name serving the same services.
@Suite("self-registration", .serialized)
struct SelfRegistrationTests {
    static func registered(_ consul: ConsulTestServer, _ id: String) -> (id: String, name: String, kind: String, address: String, port: Int)? {
        consul.agentServices().first { $0.id == id }
    }

    static func waitUntil(_ what: String, timeout: Duration = .seconds(20), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TestSupportError("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test func registersReRegistersWhenForgottenAndDeregistersOnSIGTERM() async throws {
        let arguments = ["--register", "agent", "--gateway-service-id", "gw-1", "--advertise-address", "127.0.0.1", "--register-recheck", "200ms"]
        try await GatewayProcess.with(lambdaHandler: { _ in ScriptedResponse(json: #"{"statusCode":200,"body":"ok"}"#) }, arguments: arguments) { process in
            try await Self.waitUntil("gw-1 is registered") { Self.registered(process.consul, "gw-1") != nil }
            let entry = try #require(Self.registered(process.consul, "gw-1"))
            #expect(entry.name == "lambda-gateway" && entry.kind == "terminating-gateway" && entry.address == "127.0.0.1")
            #expect(String(entry.port) == process.listenPort, "the registered port is the bound listener port")

            // The agent forgets it (the gateway may notice within the 200 ms recheck at any moment):
            // the gateway says so and registers again.
            process.consul.forgetAgentService("gw-1")
            _ = try await process.gateway.waitForLine(containing: "no longer has this gateway")
            try await Self.waitUntil("gw-1 is registered again") { Self.registered(process.consul, "gw-1") != nil }

            process.gateway.signal(SIGTERM)
            #expect(await process.gateway.waitForExit(timeout: .seconds(5)) == 0)
            #expect(Self.registered(process.consul, "gw-1") == nil, "deregistered on graceful shutdown")
        }
    }

    @Test func twoInstancesServeTheSameServicesAndOneSurvivesTheOther() async throws {
        let first = ["--register", "agent", "--gateway-service-id", "gw-1", "--advertise-address", "127.0.0.1"]
        try await GatewayProcess.with(lambdaHandler: { _ in ScriptedResponse(json: #"{"statusCode":200,"body":"from lambda"}"#) }, arguments: first) { process in
            var others: [RunningProcess] = []
            try await withTeardown {
                let second = try await GatewayProcess.startInstance(
                    consul: process.consul, lambda: process.lambda, lambdaCAFile: process.lambdaCAFile,
                    arguments: ["--register", "agent", "--gateway-service-id", "gw-2", "--advertise-address", "127.0.0.1"]
                ) { others.append($0) }.value
                try await Self.waitUntil("both are registered") { process.consul.agentServices().filter { $0.name == "lambda-gateway" }.count == 2 }
                #expect(Set(process.consul.agentServices().map(\.port)) == Set([Int(process.listenPort), Int(second.listenPort)]))

                #expect(try await process.call("/a").stdout == "from lambda\n200")
                #expect(try await process.call("/b", instance: second).stdout == "from lambda\n200")

                process.gateway.signal(SIGTERM)
                #expect(await process.gateway.waitForExit(timeout: .seconds(5)) == 0)
                #expect(process.consul.agentServices().map(\.id) == ["gw-2"])
                #expect(try await process.call("/c", instance: second).stdout == "from lambda\n200")
                #expect(try await process.call("/d").status != 0, "the stopped instance no longer accepts")
            } teardown: {
                for other in others { other.stop() }
            }
        }
    }
}

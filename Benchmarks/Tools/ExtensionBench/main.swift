import AWSAPI
import AWSCredentials
import AWSSigV4
import Foundation
import LambdaPayload
import Logging
import NIOPosix
import TestSupport

// The extension's figures for BENCHMARKS.md (issue 18), everything on 127.0.0.1 in one run:
// - cold start: process start to its first `event/next` (mTLS data read from moto's Parameter
//   Store, checked, listeners bound), over RUNS starts;
// - per connection: a function's connection through the extension, the mesh gateway stand-in and
//   an mTLS echo upstream, 64 bytes there and back, over CONNECTIONS connections one after another
//   with GAP ms between them (a function making a few calls per invocation), with
//   CONSUL_EXTENSION_WARM_CONNECTIONS=0 (a full handshake on the function's path, the reference's
//   shape) and =1 (a warm spare): latency from connect to the echo, and the extension's CPU time.
//
//   swift build -c release --product lambda-mesh-extension --product extension-bench
//   .build/release/extension-bench [--runs 20] [--connections 300] [--gap-ms 20] [--extension PATH]

func option(_ name: String, _ fallback: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1]) else { return fallback }
    return value
}

let runs = option("--runs", 20)
let connections = option("--connections", 300)
let gap = option("--gap-ms", 20)
let binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
/// `--extension PATH`: another build of the extension (say, the layer's static binary).
let executable =
    CommandLine.arguments.firstIndex(of: "--extension").map { CommandLine.arguments[$0 + 1] }
    ?? binDirectory.appendingPathComponent("lambda-mesh-extension").path
let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
let callerID = "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/caller"
let ordersID = "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/orders"
let ordersSNI = "orders.default.dc1.internal.\(trustDomain)"

func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(Int(Double(sorted.count - 1) * p + 0.5), sorted.count - 1)]
}

/// utime + stime of a process, in seconds.
func cpuSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime 14 and stime 15 (1-based over the whole line).
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (Double(fields[11])! + Double(fields[12])!) / ticks
}

/// One function connection: 64 bytes there and back; seconds from connect to the echo.
func oneConnection(_ port: Int) throws -> Double {
    let started = ContinuousClock.now
    let client = try LocalClient(port: port)
    defer { client.close() }
    client.send(String(repeating: "x", count: 64))
    guard client.read(count: 64).utf8.count == 64 else { throw TestSupportError("the tunnel ended early") }
    let elapsed = ContinuousClock.now - started
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

log("starting moto and the stand-ins")
let moto = try await MotoServer()
let admin = moto.fixture.admin
let aws = try AWSAPIClient(
    configuration: try AWSServiceConfiguration(environment: ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.endpoint]),
    credentials: StaticCredentialSource(Credentials(accessKeyID: admin.access_key_id, secretAccessKey: admin.secret_access_key, sessionToken: admin.session_token)),
    eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "bench")
)
let ca = try TestCA(commonName: "Consul CA")
let leaf = try ca.issueLeaf(commonName: "caller", dnsNames: [], ipAddresses: [], uris: [callerID])
let data = JSONValue.object([
    JSONMember("privateKeyPEM", .string(leaf.keyPEM)), JSONMember("certPEM", .string(try leaf.certificatePEM)),
    JSONMember("rootCertPEM", .string(try ca.pem)), JSONMember("trustDomain", .string(trustDomain)),
])
try await aws.ssm.putParameter(name: "/lambda_extension_data/default/default/caller", value: data.jsonText)
let gateway = try await MeshGatewayStandIn()
let upstream = try await MeshUpstreamServer(leaf: try ca.issueLeaf(commonName: "orders", dnsNames: [], ipAddresses: [], uris: [ordersID]), clientRoots: [ca])
gateway.route(ordersSNI, to: upstream.port)
let keys = moto.fixture.registrator

func environment(api: ExtensionsAPIStandIn, port: Int, warm: Int) -> [String: String] {
    [
        "AWS_LAMBDA_RUNTIME_API": api.runtimeAPI, "AWS_LAMBDA_FUNCTION_NAME": "caller", "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": keys.access_key_id, "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
        "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent", "LOG_LEVEL": "warn",
        "CONSUL_MESH_GATEWAY_URI": "127.0.0.1:\(gateway.port)", "CONSUL_EXTENSION_DATA_PREFIX": "/lambda_extension_data",
        "CONSUL_SERVICE_UPSTREAMS": "orders:\(port)", "CONSUL_EXTENSION_WARM_CONNECTIONS": String(warm),
    ]
}

/// Starts the extension and waits for its first event/next; seconds from spawn to that request.
func start(api: ExtensionsAPIStandIn, port: Int, warm: Int) async throws -> (RunningProcess, Double) {
    let spawned = ContinuousClock.now
    let process = try RunningProcess([executable], environment: environment(api: api, port: port, warm: warm))
    let next = try await api.waitForRequest("/event/next")
    let elapsed = next.receivedAt - spawned
    return (process, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

func stop(_ process: RunningProcess, api: ExtensionsAPIStandIn) async {
    await api.sendShutdown(deadline: Date().addingTimeInterval(2))
    if await process.waitForExit(timeout: .seconds(5)) == nil { process.stop() }
}

// Cold starts.
var coldStarts: [Double] = []
for run in 1...runs {
    let api = try await ExtensionsAPIStandIn()
    let (process, seconds) = try await start(api: api, port: try ListenerPorts.free(), warm: 0)
    coldStarts.append(seconds)
    await stop(process, api: api)
    await api.shutdown()
    if run == 1 { log("first cold start: \(Int(seconds * 1000)) ms") }
}

// Per connection, without and with a warm spare.
struct ConnectionFigures {
    var warm: Int
    var latencies: [Double]
    var cpuSeconds: Double
    var handshakes: Int
}
var figures: [ConnectionFigures] = []
for warm in [0, 1] {
    let api = try await ExtensionsAPIStandIn()
    let port = try ListenerPorts.free()
    let (process, _) = try await start(api: api, port: port, warm: warm)
    try await Task.sleep(for: .milliseconds(200))
    for _ in 0..<20 { _ = try oneConnection(port) }  // warm-up
    try await Task.sleep(for: .milliseconds(200))
    let handshakesBefore = upstream.handshakes
    let cpuBefore = cpuSeconds(process.pid)
    var latencies: [Double] = []
    for _ in 0..<connections {
        latencies.append(try oneConnection(port))
        try await Task.sleep(for: .milliseconds(gap))
    }
    try await Task.sleep(for: .milliseconds(200))
    figures.append(ConnectionFigures(warm: warm, latencies: latencies, cpuSeconds: cpuSeconds(process.pid) - cpuBefore, handshakes: upstream.handshakes - handshakesBefore))
    await stop(process, api: api)
    await api.shutdown()
}

let size = (try? FileManager.default.attributesOfItem(atPath: executable)[.size] as? Int) ?? 0
print("lambda-mesh-extension: \(executable), \(size / 1024) KB")
print(
    String(
        format: "cold start to first event/next (%d runs): p50 %.1f ms, p90 %.1f ms, min %.1f ms", runs, percentile(coldStarts, 0.5) * 1000, percentile(coldStarts, 0.9) * 1000,
        coldStarts.min()! * 1000))
print("| warm spares | connections | connect→echo p50 | p90 | p99 | extension CPU per connection | upstream handshakes |")
print("|---|---|---|---|---|---|---|")
for figure in figures {
    print(
        String(
            format: "| %d | %d | %.2f ms | %.2f ms | %.2f ms | %.0f µs | %d |", figure.warm, figure.latencies.count,
            percentile(figure.latencies, 0.5) * 1000, percentile(figure.latencies, 0.9) * 1000, percentile(figure.latencies, 0.99) * 1000,
            figure.cpuSeconds / Double(figure.latencies.count) * 1e6, figure.handshakes
        ))
}
await gateway.shutdown()
await upstream.shutdown()
await aws.shutdown()
moto.stop()

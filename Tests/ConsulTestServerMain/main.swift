import Foundation
import TestSupport

// The Consul API test server, standalone: `swift run consul-test-server [--port-file PATH]
// [--token T] [--trust-domain TD] [--datacenter DC] [--max-conns-per-client N]` (Consul's
// limits.http_max_conns_per_client, default 200). Loopback only; stops on SIGINT/SIGTERM.

func option(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

var options = ConsulTestServer.Options()
options.requiredToken = option("--token")
if let trustDomain = option("--trust-domain") { options.trustDomain = trustDomain }
if let datacenter = option("--datacenter") { options.datacenter = datacenter }
if let limit = option("--max-conns-per-client").flatMap(Int.init) { options.maxConnectionsPerClient = limit }
let server = try await ConsulTestServer(options: options)
FileHandle.standardOutput.write(Data("consul-test-server listening on \(server.baseURL) (control API under /_control/)\n".utf8))
if let portFile = option("--port-file") {
    try String(server.port).write(toFile: portFile, atomically: true, encoding: .utf8)
}

// Serves until the process is stopped (SIGTERM or SIGINT end it; there is no state to save).
while true {
    try await Task.sleep(for: .seconds(3600))
}

import Foundation
import TestSupport

// The Consul API test server, standalone: `swift run consul-test-server [--port-file PATH]`.
// Prints its address; stops on SIGINT/SIGTERM. Loopback only.
let arguments = CommandLine.arguments
var options = ConsulTestServer.Options()
if let index = arguments.firstIndex(of: "--token"), index + 1 < arguments.count { options.requiredToken = arguments[index + 1] }
if let index = arguments.firstIndex(of: "--trust-domain"), index + 1 < arguments.count { options.trustDomain = arguments[index + 1] }
if let index = arguments.firstIndex(of: "--datacenter"), index + 1 < arguments.count { options.datacenter = arguments[index + 1] }
let server = try await ConsulTestServer(options: options)
print("consul-test-server listening on \(server.baseURL) (control API under /_control/)")
if let index = arguments.firstIndex(of: "--port-file"), index + 1 < arguments.count {
    try String(server.port).write(toFile: arguments[index + 1], atomically: true, encoding: .utf8)
}
let stopped = DispatchSemaphore(value: 0)
let signalSources = [SIGINT, SIGTERM].map { number in
    signal(number, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
    source.setEventHandler { stopped.signal() }
    source.resume()
    return source
}
await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
    DispatchQueue.global().async {
        stopped.wait()
        continuation.resume()
    }
}
signalSources.forEach { $0.cancel() }
await server.shutdown()

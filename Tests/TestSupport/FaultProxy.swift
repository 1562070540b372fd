import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// An HTTP proxy on 127.0.0.1 in front of a real endpoint (moto's server) that answers chosen
/// requests with a fault instead of forwarding them: throttling of one function's `ListTags`, a
/// failing second `ListFunctions` page. Requests are forwarded byte for byte (the `Host` header
/// included), so the endpoint still checks every signature.
public final class FaultProxy: Sendable {
    /// A fault for requests that `matches`, `count` times (nil: every time).
    public struct Rule: Sendable {
        public var matches: @Sendable (RecordedRequest) -> Bool
        public var response: ScriptedResponse
        public var count: Int?

        public init(count: Int? = nil, response: ScriptedResponse, matches: @escaping @Sendable (RecordedRequest) -> Bool) {
            self.matches = matches
            self.response = response
            self.count = count
        }

        /// AWS's REST-JSON throttling answer.
        public static func throttling(count: Int? = nil, _ matches: @escaping @Sendable (RecordedRequest) -> Bool) -> Rule {
            Rule(
                count: count, response: ScriptedResponse(status: 429, headers: [("X-Amzn-ErrorType", "TooManyRequestsException")], json: #"{"Type":"User","message":"Rate exceeded"}"#),
                matches: matches)
        }

        /// A 500 answer.
        public static func serviceError(count: Int? = nil, _ matches: @escaping @Sendable (RecordedRequest) -> Bool) -> Rule {
            Rule(
                count: count, response: ScriptedResponse(status: 500, headers: [("X-Amzn-ErrorType", "ServiceException")], json: #"{"Type":"Service","message":"internal failure"}"#), matches: matches)
        }
    }

    let server: TestHTTPServer
    let client: HTTPClient
    let rules: NIOLockedValueBox<[Rule]>
    let faulted = NIOLockedValueBox<[RecordedRequest]>([])
    let inFlight = NIOLockedValueBox<(now: Int, peak: Int)>((0, 0))

    public var endpoint: String { server.baseURL }
    /// Every request the proxy saw, forwarded or not.
    public var requests: [RecordedRequest] { server.requests }
    /// The requests answered with a fault.
    public var faultedRequests: [RecordedRequest] { faulted.withLockedValue { $0 } }
    /// The most requests the proxy was handling at once.
    public var peakInFlight: Int { inFlight.withLockedValue { $0.peak } }

    public init(forwardingTo target: String) async throws {
        precondition(target.hasPrefix("http://127.0.0.1:"), "the proxy only forwards to loopback")
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let rules = NIOLockedValueBox<[Rule]>([])
        let faulted = self.faulted
        let inFlight = self.inFlight
        self.client = client
        self.rules = rules
        server = try await TestHTTPServer { request in
            inFlight.withLockedValue {
                $0.now += 1
                $0.peak = max($0.peak, $0.now)
            }
            defer { inFlight.withLockedValue { $0.now -= 1 } }
            let fault: ScriptedResponse? = rules.withLockedValue { rules in
                guard let index = rules.firstIndex(where: { $0.matches(request) }) else { return nil }
                let response = rules[index].response
                if let count = rules[index].count {
                    if count <= 1 { rules.remove(at: index) } else { rules[index].count = count - 1 }
                }
                return response
            }
            if let fault {
                faulted.withLockedValue { $0.append(request) }
                return fault
            }
            return await Self.forward(request, to: target, client: client)
        }
    }

    public func add(_ rule: Rule) {
        rules.withLockedValue { $0.append(rule) }
    }

    public func clearRules() {
        rules.withLockedValue { $0.removeAll() }
    }

    public func shutdown() async {
        await server.shutdown()
        try? await client.shutdown()
    }

    static func forward(_ request: RecordedRequest, to target: String, client: HTTPClient) async -> ScriptedResponse {
        var outgoing = HTTPClientRequest(url: target + request.uri)
        outgoing.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers where name.lowercased() != "content-length" && name.lowercased() != "connection" {
            outgoing.headers.add(name: name, value: value)
        }
        if !request.body.isEmpty || request.method == "POST" || request.method == "PUT" {
            outgoing.body = .bytes(ByteBuffer(bytes: request.body))
        }
        do {
            let response = try await client.execute(outgoing, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 16 << 20)
            let headers = response.headers.filter { !["content-length", "transfer-encoding", "connection"].contains($0.name.lowercased()) }.map { ($0.name, $0.value) }
            return ScriptedResponse(status: Int(response.status.code), headers: headers, body: Array(body.readableBytesView))
        } catch {
            return ScriptedResponse(status: 502, body: Array("proxy: \(error)".utf8))
        }
    }
}

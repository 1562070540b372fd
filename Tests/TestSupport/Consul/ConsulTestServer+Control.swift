import Foundation

extension ConsulTestServer {
    /// The control API over HTTP, for the standalone server (`consul-test-server`); in-process tests
    /// call the Swift methods directly. Config entries, catalog and agent writes use Consul's own API.
    ///
    ///     POST /_control/link?gateway=G&service=A&service=B      terminating-gateway entry of G
    ///     POST /_control/instance?service=S                      catalog instance on node lambdas
    ///     POST /_control/deregister-instance?service=S
    ///     POST /_control/rotate-leaf?service=S
    ///     POST /_control/rotate-roots[?remove-old=true]
    ///     POST /_control/prune-roots                             drop every root but the active one
    ///     POST /_control/fault?path=/v1/...&status=500&count=N   (status=hang|close|malformed too)
    ///     POST /_control/index?value=N                           next X-Consul-Index
    ///     POST /_control/default-policy?value=allow|deny
    ///     POST /_control/agent-policy?value=|allow|deny             agent's DefaultIntentionPolicy
    ///     POST /_control/token?token=T[&deny-intentions=S…][&agent-read=false][&remove=true]   ACL mode
    ///     POST /_control/churn?service=S&per-second=N&seconds=T      service-defaults of S rewritten N/s
    ///     POST /_control/add-lambda-services?count=N[&prefix=fn-][&first=0]   N Lambda services, linked
    ///     GET  /_control/stats                                   JSON: requests, connections, leaf reads
    ///     GET  /_control/ca                                      PEM of the active root
    func control(path: String, query: [(String, String)]) -> ScriptedResponse {
        func value(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
        func ok(_ text: String = "ok") -> ScriptedResponse { ScriptedResponse(status: 200, body: Array((text + "\n").utf8)) }
        func bad(_ text: String) -> ScriptedResponse { ScriptedResponse(status: 400, body: Array((text + "\n").utf8)) }
        do {
            switch path {
            case "/_control/link":
                try linkServices(query.filter { $0.0 == "service" }.map(\.1), gateway: value("gateway") ?? "lambda-gateway")
            case "/_control/instance":
                guard let service = value("service") else { return bad("service= is required") }
                registerInstance(service)
            case "/_control/deregister-instance":
                guard let service = value("service") else { return bad("service= is required") }
                deregisterInstance(service)
            case "/_control/rotate-leaf":
                guard let service = value("service") else { return bad("service= is required") }
                try rotateLeaf(service)
            case "/_control/rotate-roots":
                try rotateRoots(removeOld: value("remove-old") == "true")
            case "/_control/prune-roots":
                pruneRoots()
            case "/_control/fault":
                guard let prefix = value("path"), let status = value("status") else { return bad("path= and status= are required") }
                let count = value("count").flatMap(Int.init) ?? 1
                let fault: Fault
                switch status {
                case "hang": fault = .hang
                case "close": fault = .closeConnection
                case "malformed": fault = .malformedBody
                default:
                    guard let code = Int(status) else { return bad("status must be a number, hang, close or malformed") }
                    fault = .status(code, body: value("body") ?? (code == 500 ? "No cluster leader" : "injected"))
                }
                inject(fault, count: count, pathPrefix: prefix)
            case "/_control/index":
                guard let index = value("value").flatMap(UInt64.init) else { return bad("value= must be a number") }
                overrideNextIndex(index)
            case "/_control/default-policy":
                guard let policy = value("value"), ["allow", "deny"].contains(policy) else { return bad("value= must be allow or deny") }
                setDefaultACLPolicy(policy)
            case "/_control/agent-policy":
                let policy = value("value") ?? ""
                guard ["", "allow", "deny"].contains(policy) else { return bad("value= must be empty, allow or deny") }
                setAgentDefaultIntentionPolicy(policy)
            case "/_control/token":
                guard let token = value("token") else { return bad("token= is required") }
                let denied = Set(query.filter { $0.0 == "deny-intentions" }.map(\.1))
                setTokenRules(token, value("remove") == "true" ? nil : TokenRules(deniedIntentionReads: denied, agentRead: value("agent-read") != "false"))
            case "/_control/churn":
                guard let service = value("service"), let rate = value("per-second").flatMap(Int.init), rate > 0,
                    let seconds = value("seconds").flatMap(Double.init)
                else { return bad("service=, per-second= (> 0) and seconds= are required") }
                Task { await churn(service: service, perSecond: rate, for: .milliseconds(Int(seconds * 1000))) }
            case "/_control/add-lambda-services":
                guard let count = value("count").flatMap(Int.init), count > 0 else { return bad("count= (> 0) is required") }
                let first = value("first").flatMap(Int.init) ?? 0
                let prefix = value("prefix") ?? "fn-"
                try addLinkedLambdaServices((first..<first + count).map { "\(prefix)\($0)" }, gateway: value("gateway") ?? "lambda-gateway")
            case "/_control/stats":
                let (requests, leafReads, longPolls) = state.withLockedValue { state in
                    (state.requests.count, state.requests.count { $0.path.hasPrefix("/v1/agent/connect/ca/leaf/") }, state.openLongPolls)
                }
                let stats = [
                    "requests": requests, "leafReads": leafReads, "openLongPolls": longPolls,
                    "openConnections": server.openConnectionsPerClient, "peakConnections": peakConnectionsPerClient,
                    "refusedConnections": refusedConnections, "leafReadsSinceRotation": leafReadsSinceRotation,
                ]
                let body = "{" + stats.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
                return ScriptedResponse(status: 200, body: Array((body + "\n").utf8))
            case "/_control/ca":
                return ok(try activeRootCA.pem)
            default:
                return ScriptedResponse(status: 404, body: Array("unknown control path\n".utf8))
            }
        } catch {
            return ScriptedResponse(status: 500, body: Array("\(error)\n".utf8))
        }
        return ok()
    }
}

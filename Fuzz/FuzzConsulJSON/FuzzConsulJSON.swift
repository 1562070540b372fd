import Foundation
import FuzzSupport
import MeshIdentity
import NIOCore

// libFuzzer target: the input decoded as the answer of each endpoint the gateway watches (docs/ARCHITECTURE.md,
// Configuration: the snapshot flow), with `ConsulClient.decode` as the watches use it. Each answer that decodes replaces its part
// of a consistent state (shared/testdata/consul: `orders` is served) and the snapshot is built and
// used as a request would use it: SNI lookup and intentions compiled and evaluated.
@testable import ConsulAPI
@testable import GatewayCore

let trustDomain = "11111111-2222-3333-4444-555555555555.consul"

/// The served world of shared/testdata/consul, trimmed to the fields the gateway reads.
let baseline: ConsulState = {
    func decode<Value: Decodable>(_ type: Value.Type, _ json: String) -> Value {
        try! ConsulClient.decode(type, ByteBuffer(string: json), endpoint: "baseline")
    }
    var state = ConsulState()
    state.roots = decode(
        CARoots.self,
        """
        {"ActiveRootID": "5b:1e", "TrustDomain": "\(trustDomain)",
         "Roots": [{"ID": "5b:1e", "Name": "Consul CA Primary Cert", "RootCert": "-----BEGIN CERTIFICATE-----\\nPLACEHOLDER\\n-----END CERTIFICATE-----\\n", "Active": true}]}
        """)
    state.gatewayServices = decode(
        [GatewayService].self,
        """
        [{"Gateway": {"Name": "lambda-gateway"}, "Service": {"Name": "orders"}, "GatewayKind": "terminating-gateway"},
         {"Gateway": {"Name": "lambda-gateway"}, "Service": {"Name": "thumbnails"}, "GatewayKind": "terminating-gateway"}]
        """)
    state.catalogServices[.default] = decode(CatalogServices.self, #"{"orders": ["managed-by-lambda-registrator"], "thumbnails": []}"#)
    state.serviceDefaults[.default] = decode(
        [ServiceDefaults].self,
        """
        [{"Kind": "service-defaults", "Name": "orders", "Protocol": "http", "EnvoyExtensions": [{"Name": "builtin/aws/lambda",
          "Arguments": {"ARN": "arn:aws:lambda:us-east-1:123456789012:function:orders", "PayloadPassthrough": false, "InvocationMode": "synchronous"}}]},
         {"Kind": "service-defaults", "Name": "thumbnails", "Protocol": "http", "Meta": {
          "serverless.consul.hashicorp.com/v1alpha1/lambda/enabled": "true",
          "serverless.consul.hashicorp.com/v1alpha1/lambda/arn": "arn:aws:lambda:eu-west-1:123456789012:function:thumbnails:live",
          "serverless.consul.hashicorp.com/v1alpha1/lambda/region": "eu-west-1",
          "serverless.consul.hashicorp.com/v1alpha1/lambda/invocation-mode": "asynchronous"}}]
        """)
    state.serviceResolvers[.default] = decode([ServiceResolver].self, #"[{"Kind": "service-resolver", "Name": "orders", "RequestTimeout": "30s"}]"#)
    state.proxyDefaults = .absent
    state.mesh = .absent
    state.intentions["orders"] = decode(
        IntentionMatches.self,
        """
        {"orders": [{"SourceName": "billing", "SourceNS": "default", "SourceType": "consul", "Precedence": 9, "Permissions": [
           {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
           {"Action": "allow", "HTTP": {"PathPrefix": "/orders", "Methods": ["GET", "HEAD"], "Header": [{"Name": "x-tenant", "Present": true}]}}]},
          {"SourceName": "web", "SourceNS": "default", "SourceType": "consul", "Action": "allow", "Precedence": 9}]}
        """)["orders"]!
    state.intentions["thumbnails"] = []
    state.leaves["orders"] = decode(
        LeafCertificate.self,
        """
        {"SerialNumber": "5e:3a", "Service": "orders", "ServiceURI": "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/orders",
         "CertPEM": "-----BEGIN CERTIFICATE-----\\nPLACEHOLDER\\n-----END CERTIFICATE-----\\n",
         "PrivateKeyPEM": "-----BEGIN EC PRIVATE KEY-----\\nPLACEHOLDER\\n-----END EC PRIVATE KEY-----\\n",
         "ValidAfter": "2026-01-10T09:00:00Z", "ValidBefore": "2026-01-13T09:00:00Z"}
        """)
    state.agentDefaultPolicy = .deny
    precondition(SnapshotBuilder.build(from: state, version: 1, now: now).services["orders"] != nil, "the baseline serves orders")
    return state
}()

let now = Date(timeIntervalSince1970: 1_768_122_000)  // 2026-01-11, inside the baseline leaf's validity

let callers = ["web", "billing", "intruder"].map { SPIFFEID(trustDomain: trustDomain, datacenter: "dc1", service: $0) }
let requests = [
    AuthorizationRequest(method: "GET", path: "/orders/42", headers: [("x-tenant", "acme")]),
    AuthorizationRequest(method: "POST", path: "/admin/users", headers: []),
]

func decoded<Value: Decodable>(_ type: Value.Type, _ body: ByteBuffer, _ endpoint: String) -> Value? {
    try? ConsulClient.decode(type, body, endpoint: endpoint)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    var states: [ConsulState] = []
    func replaced(_ change: (inout ConsulState) -> Void) {
        var state = baseline
        change(&state)
        states.append(state)
    }
    if let roots = decoded(CARoots.self, body, "/v1/agent/connect/ca/roots") { replaced { $0.roots = roots } }
    if let leaf = decoded(LeafCertificate.self, body, "/v1/agent/connect/ca/leaf/orders") { replaced { $0.leaves["orders"] = leaf } }
    if let linked = decoded([GatewayService].self, body, "/v1/catalog/gateway-services/lambda-gateway") { replaced { $0.gatewayServices = linked } }
    if let catalog = decoded(CatalogServices.self, body, "/v1/catalog/services") { replaced { $0.catalogServices[.default] = catalog } }
    if let entries = decoded([ServiceDefaults].self, body, "/v1/config/service-defaults") { replaced { $0.serviceDefaults[.default] = entries } }
    if let entry = decoded(ServiceDefaults.self, body, "/v1/config/service-defaults/orders") { replaced { $0.serviceDefaults[.default] = [entry] } }
    if let entries = decoded([ServiceResolver].self, body, "/v1/config/service-resolver") { replaced { $0.serviceResolvers[.default] = entries } }
    if let entry = decoded(ServiceResolver.self, body, "/v1/config/service-resolver/orders") { replaced { $0.serviceResolvers[.default] = [entry] } }
    if let entry = decoded(ProxyDefaults.self, body, "/v1/config/proxy-defaults/global") { replaced { $0.proxyDefaults = .present(entry) } }
    if let entry = decoded(MeshConfig.self, body, "/v1/config/mesh/mesh") { replaced { $0.mesh = .present(entry) } }
    if let matches = decoded(IntentionMatches.self, body, "/v1/connect/intentions/match") {
        replaced { state in
            for name in ["orders", "thumbnails"] { state.intentions[name] = matches[name] ?? [] }
        }
    }
    if let agent = decoded(AgentSelf.self, body, "/v1/agent/self") {
        replaced { $0.agentDefaultPolicy = WatchCoordinator.intentionPolicy(agent.DebugConfig?.DefaultIntentionPolicy) }
    }
    // Read elsewhere (registration, the CLI), not watched: decoded only.
    _ = decoded([HealthServiceEntry].self, body, "/v1/health/service/orders")
    _ = decoded(FreeFormJSON.self, body, "/v1/config/service-defaults/orders")

    for state in states {
        let snapshot = SnapshotBuilder.build(from: state, version: 2, now: now)
        for (key, service) in snapshot.services {
            for sni in service.snis {
                precondition(snapshot.service(forSNI: sni + ".") != nil, "SNI \(sni) of \(key) selects nothing")
            }
            let evaluator = service.authorization(defaultPolicy: snapshot.defaultIntentionPolicy)
            for caller in callers {
                for request in requests { _ = evaluator.isAllowed(caller: caller, request: request) }
            }
        }
    }
    return 0
}

@_cdecl("FuzzConsulJSON_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = baseline  // built before the first input, so no input is charged with its allocations
    return runLibFuzzer(argc, argv, fuzz)
}

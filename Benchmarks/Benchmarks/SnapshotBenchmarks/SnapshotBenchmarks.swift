import Benchmark
import ConsulAPI
import Foundation
import GatewayCore

/// Building the snapshot for 10,000 linked Lambda services from the watch state (issue target: < 200 ms).
let benchmarks: @Sendable () -> Void = {
    let count = 10_000
    let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
    func decode<T: Decodable>(_ type: T.Type, _ json: String) -> T {
        try! JSONDecoder().decode(type, from: Data(json.utf8))
    }
    let names = (0..<count).map { "svc-\($0)" }
    var state = ConsulState()
    state.roots = decode(
        CARoots.self, #"{"ActiveRootID":"a","TrustDomain":"\#(trustDomain)","Roots":[{"ID":"a","RootCert":"-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n","Active":true}]}"#)
    state.mesh = .absent
    state.proxyDefaults = .absent
    state.gatewayServices = decode(
        [GatewayService].self, "[" + names.map { #"{"Gateway":{"Name":"lambda-gateway"},"Service":{"Name":"\#($0)"},"GatewayKind":"terminating-gateway"}"# }.joined(separator: ",") + "]")
    state.catalogServices[.default] = Dictionary(uniqueKeysWithValues: names.map { ($0, ["managed-by-lambda-registrator"]) })
    state.serviceDefaults[.default] = decode(
        [ServiceDefaults].self,
        "["
            + names.map {
                #"{"Kind":"service-defaults","Name":"\#($0)","Protocol":"http","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:\#($0)","InvocationMode":"synchronous"}}]}"#
            }.joined(separator: ",") + "]")
    state.serviceResolvers[.default] = decode(
        [ServiceResolver].self, "[" + names.prefix(1000).map { #"{"Kind":"service-resolver","Name":"\#($0)","RequestTimeout":"30s","Subsets":{"v1":{}}}"# }.joined(separator: ",") + "]")
    // The service-intentions list: one entry per service and a `*` one, derived per build.
    state.intentionEntries[.default] = decode(
        [ServiceIntentionsEntry].self,
        "["
            + (names + ["*"]).map { #"{"Kind":"service-intentions","Name":"\#($0)","Sources":[{"Name":"web","Action":"allow","Precedence":\#($0 == "*" ? 6 : 9),"Type":"consul"}]}"# }.joined(
                separator: ",") + "]"
    )
    for name in names {
        state.leaves[name] = decode(
            LeafCertificate.self,
            #"{"SerialNumber":"01","CertPEM":"-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n","PrivateKeyPEM":"-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n","Service":"\#(name)","ServiceURI":"spiffe://\#(trustDomain)/ns/default/dc/dc1/svc/\#(name)","ValidAfter":"2026-01-10T09:00:00Z","ValidBefore":"2026-01-13T09:00:00Z","ModifyIndex":5}"#
        )
    }
    state.headerDefaultPolicy = "allow"
    let built = state

    Benchmark(
        "Snapshot build, 10,000 linked services",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(10), maxIterations: 20)
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            let snapshot = SnapshotBuilder.build(from: built, version: 1, now: Date())
            precondition(snapshot.services.count == count, "not every service was served: \(snapshot.notServed.first.map { "\($0)" } ?? "")")
            blackHole(snapshot)
        }
    }
}

import ConsulAPI
import Foundation
import GatewayCore
import LambdaPayload
import TestSupport
import Testing

/// The files in `conf/` are what users copy: they must say what the gateway actually accepts.
@Suite("conf/ examples")
struct ShippedConfigTests {
    static let conf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../conf").standardized

    @Test func theExampleStaticConfigIsValidOnceItsCertificatesExist() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let example = try String(contentsOf: Self.conf.appendingPathComponent("gateway.example.yaml"), encoding: .utf8)
        try FileManager.default.createDirectory(at: directory.url.appendingPathComponent("certs"), withIntermediateDirectories: true)
        let ca = try TestCA(commonName: "Consul CA")
        let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
        _ = try directory.file("certs/consul-ca.pem", contents: try ca.pem)
        for service in ["orders", "thumbnails"] {
            let leaf = try ca.issueLeaf(commonName: service, dnsNames: [], ipAddresses: [], uris: ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/\(service)"])
            _ = try directory.file("certs/\(service).pem", contents: try leaf.certificatePEM)
            _ = try directory.file("certs/\(service)-key.pem", contents: leaf.keyPEM)
        }
        let path = try directory.file("gateway.yaml", contents: example)
        let snapshot = try StaticConfigFile.load(path: path).snapshot(version: 1, now: Date())
        #expect(snapshot.services.keys.sorted() == ["orders", "thumbnails"])
        #expect(snapshot.services["orders"]?.snis.count == 2)
        #expect(snapshot.services["thumbnails"]?.lambda.payloadFormat == .apiGatewayV2)
    }

    @Test(arguments: ["service-defaults-orders.json", "service-defaults-thumbnails-legacy.json"])
    func theServiceDefaultsExamplesResolveToALambda(_ file: String) throws {
        let data = try Data(contentsOf: Self.conf.appendingPathComponent("consul/\(file)"))
        let entry = try JSONDecoder().decode(ServiceDefaults.self, from: data)
        let settings = try #require(try LambdaSettings.resolve(service: entry.Name, serviceDefaults: entry, proxyDefaults: nil))
        #expect(settings.function.region == "us-east-1")
        #expect(settings.function.functionName == entry.Name)
    }

    @Test(arguments: ["terminating-gateway.json", "service-intentions-orders.json", "../policies/iam-invoke.json"])
    func theJSONExamplesAreJSON(_ file: String) throws {
        let data = try Data(contentsOf: Self.conf.appendingPathComponent("consul/\(file)"))
        #expect(try JSONSerialization.jsonObject(with: data) is [String: Any])
    }
}

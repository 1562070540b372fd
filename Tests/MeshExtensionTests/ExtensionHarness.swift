import AWSAPI
import AWSCredentials
import AWSSigV4
import Foundation
import LambdaPayload
import Logging
import NIOCore
import NIOPosix
import TestSupport

/// Everything the extension process meets in Lambda, on 127.0.0.1: the Extensions API stand-in,
/// moto's server holding the function's mTLS data in Parameter Store (docs/COMPATIBILITY.md, What it writes), a mesh gateway
/// stand-in routing by SNI, and the upstream's sidecar stand-in presenting a leaf made by the test.
final class ExtensionHarness: Sendable {
    static let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
    static let callerID = "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/caller"
    static let ordersID = "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/orders"
    static let ordersSNI = "orders.default.dc1.internal.\(trustDomain)"
    static let parameter = "/lambda_extension_data/default/default/caller"

    let ca: TestCA
    let moto: MotoServer
    let ssm: AWSAPIClient
    let api: ExtensionsAPIStandIn
    let gateway: MeshGatewayStandIn
    let upstream: MeshUpstreamServer
    /// The local port of the `orders` upstream.
    let ordersPort: Int

    /// `upstreamLeaf` decides what the sidecar presents (default: orders' leaf from `ca`).
    init(upstreamLeaf: ((TestCA) throws -> TestLeaf)? = nil) async throws {
        ca = try TestCA(commonName: "Consul CA 7")
        moto = try await MotoServer()
        let admin = moto.fixture.admin
        ssm = try AWSAPIClient(
            configuration: try AWSServiceConfiguration(environment: ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.endpoint]),
            credentials: StaticCredentialSource(Credentials(accessKeyID: admin.access_key_id, secretAccessKey: admin.secret_access_key, sessionToken: admin.session_token)),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "harness")
        )
        api = try await ExtensionsAPIStandIn()
        gateway = try await MeshGatewayStandIn()
        let leaf = try upstreamLeaf?(ca) ?? ca.issueLeaf(commonName: "orders", dnsNames: [], ipAddresses: [], uris: [Self.ordersID])
        upstream = try await MeshUpstreamServer(leaf: leaf, clientRoots: [ca])
        gateway.route(Self.ordersSNI, to: upstream.port)
        ordersPort = try ListenerPorts.free()
    }

    /// The Parameter Store value (docs/COMPATIBILITY.md, What it writes) for a caller leaf from `ca` (valid until `notValidAfter`).
    func putCallerData(notValidAfter: Date = Date().addingTimeInterval(72 * 3600), roots: [TestCA]? = nil) async throws {
        let leaf = try ca.issueLeaf(commonName: "caller", dnsNames: [], ipAddresses: [], uris: [Self.callerID], notValidAfter: notValidAfter)
        let value = JSONValue.object([
            JSONMember("privateKeyPEM", .string(leaf.keyPEM)),
            JSONMember("certPEM", .string(try leaf.certificatePEM)),
            JSONMember("rootCertPEM", .string(try (roots ?? [ca]).map { try $0.pem }.joined())),
            JSONMember("trustDomain", .string(Self.trustDomain)),
        ])
        try await ssm.ssm.putParameter(name: Self.parameter, value: value.jsonText)
    }

    /// The extension's environment in Lambda; `overrides` replace or (with `nil`) remove variables.
    func environment(_ overrides: [String: String?] = [:], awsEndpoint: String? = nil) -> [String: String] {
        let keys = moto.fixture.registrator
        var environment = [
            "AWS_LAMBDA_RUNTIME_API": api.runtimeAPI,
            "AWS_LAMBDA_FUNCTION_NAME": "caller",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": awsEndpoint ?? moto.endpoint,
            "AWS_ACCESS_KEY_ID": keys.access_key_id,
            "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": "/nonexistent",
            "CONSUL_MESH_GATEWAY_URI": "127.0.0.1:\(gateway.port)",
            "CONSUL_EXTENSION_DATA_PREFIX": "/lambda_extension_data",
            "CONSUL_SERVICE_UPSTREAMS": "orders:\(ordersPort)",
            "CONSUL_EXTENSION_WARM_CONNECTIONS": "0",
        ]
        if let token = keys.session_token { environment["AWS_SESSION_TOKEN"] = token }
        for (name, value) in overrides { environment[name] = value }
        return environment
    }

    /// Starts the built `lambda-mesh-extension`.
    func start(_ environment: [String: String]) throws -> RunningProcess {
        try RunningProcess([Self.executable.path], environment: environment)
    }

    /// The executable sits beside the test bundle in the build folder.
    static var executable: URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("lambda-mesh-extension").path), directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("lambda-mesh-extension")
    }

    func shutdown() async {
        await api.shutdown()
        await gateway.shutdown()
        await upstream.shutdown()
        await ssm.shutdown()
        moto.stop()
    }
}

/// Runs `body` with a fresh harness, torn down afterwards (the process too).
func withExtension(upstreamLeaf: ((TestCA) throws -> TestLeaf)? = nil, _ body: (ExtensionHarness) async throws -> Void) async throws {
    let harness = try await ExtensionHarness(upstreamLeaf: upstreamLeaf)
    try await withTeardown({ try await body(harness) }, teardown: { await harness.shutdown() })
}

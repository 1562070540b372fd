import AWSAPI
import AWSCredentials
import AWSSigV4
import Foundation
import LambdaPayload
import Logging
import NIOPosix
import TestSupport
import Testing

/// Both directions of the product in one call (issue 18): a function's HTTP client →
/// `lambda-mesh-extension` (its leaf from moto's Parameter Store) → a mesh gateway stand-in that
/// routes by SNI → `lambda-gateway run` as the terminating gateway for the Lambda service `orders`
/// (its leaf, roots and intentions from the Consul API test server) → the Lambda stand-in.
@Suite(.serialized) struct ExtensionEndToEndTests {
    static let callerID = "spiffe://\(GatewayProcess.trustDomain)/ns/default/dc/dc1/svc/caller"

    static var extensionExecutable: URL {
        CLI.executable.deletingLastPathComponent().appendingPathComponent("lambda-mesh-extension")
    }

    @Test func aFunctionCallsALambdaServiceThroughTheMesh() async throws {
        try await GatewayProcess.with(lambdaHandler: { request in
            ScriptedResponse(json: #"{"statusCode":200,"headers":{"content-type":"text/plain"},"body":"orders saw \#(request.bodyText.contains("svc/caller") ? "caller" : "someone else")"}"#)
        }) { process in
            /// What the served snapshot holds for `orders`'s intentions (`/config` gives their number).
            func servedIntentions() async throws -> Int? {
                let output = try await process.admin("/config").stdout
                let body = output[..<(output.lastIndex(of: "\n") ?? output.endIndex)]
                let document = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
                return ((document?["services"] as? [String: Any])?["orders"] as? [String: Any])?["intentions"] as? Int
            }
            let unset = try await servedIntentions()
            // Only `caller` may call `orders`: the gateway must see the extension's client leaf.
            try process.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"caller","Action":"allow"},{"Name":"*","Action":"deny"}]}"#)
            let moto = try await MotoServer()
            let api = try await ExtensionsAPIStandIn()
            let meshGateway = try await MeshGatewayStandIn()
            meshGateway.route(GatewayProcess.sni, to: Int(process.listenPort)!)
            let admin = moto.fixture.admin
            let aws = try AWSAPIClient(
                configuration: try AWSServiceConfiguration(environment: ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.endpoint]),
                credentials: StaticCredentialSource(Credentials(accessKeyID: admin.access_key_id, secretAccessKey: admin.secret_access_key, sessionToken: admin.session_token)),
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "e2e")
            )
            var started: RunningProcess?
            try await withTeardown {
                // What the registrator writes for `caller` (docs/COMPATIBILITY.md, What it writes): its Consul leaf and the roots.
                let leaf = try process.consul.activeRootCA.issueLeaf(commonName: "caller", dnsNames: [], ipAddresses: [], uris: [Self.callerID])
                let data = JSONValue.object([
                    JSONMember("privateKeyPEM", .string(leaf.keyPEM)), JSONMember("certPEM", .string(try leaf.certificatePEM)),
                    JSONMember("rootCertPEM", .string(try process.consul.activeRootCA.pem)), JSONMember("trustDomain", .string(GatewayProcess.trustDomain)),
                ])
                try await aws.ssm.putParameter(name: "/lambda_extension_data/default/default/caller", value: data.jsonText)
                try await waitUntilAsync("the gateway serves the new intentions") { try await servedIntentions() != unset }

                let port = try ListenerPorts.free()
                let keys = moto.fixture.registrator
                let extensionProcess = try RunningProcess(
                    [Self.extensionExecutable.path],
                    environment: [
                        "AWS_LAMBDA_RUNTIME_API": api.runtimeAPI, "AWS_LAMBDA_FUNCTION_NAME": "caller", "AWS_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": keys.access_key_id, "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
                        "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent",
                        "CONSUL_MESH_GATEWAY_URI": "tls://127.0.0.1:\(meshGateway.port)", "CONSUL_EXTENSION_DATA_PREFIX": "/lambda_extension_data",
                        "CONSUL_SERVICE_UPSTREAMS": "orders:\(port)",
                    ])
                started = extensionProcess
                _ = try await api.waitForRequest("/event/next")
                await api.sendInvoke()

                // The function's code speaks plain HTTP to its local port.
                let call = try await ChildProcess.run(["curl", "-sS", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)/orders/42"])
                #expect(call.stdout == "orders saw caller\n200", "\(call.stdout) \(call.stderr)\n\(extensionProcess.output.joined(separator: "\n"))")
                #expect(meshGateway.snis.contains(GatewayProcess.sni))
                #expect(process.lambda.requests.count == 1)

                // And a caller the intentions deny, with the same path, gets 403 from the gateway:
                // the identity that decides is the extension's client certificate.
                let allowing = try await servedIntentions()
                try process.consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"orders","Sources":[{"Name":"caller","Action":"deny"}]}"#)
                try await waitUntilAsync("the gateway serves the deny") { try await servedIntentions() != allowing }
                let denied = try await ChildProcess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/orders/42"])
                #expect(denied.stdout == "403")
                #expect(process.lambda.requests.count == 1)
            } teardown: {
                started?.stop()
                await api.shutdown()
                await meshGateway.shutdown()
                await aws.shutdown()
                moto.stop()
            }
        }
    }
}

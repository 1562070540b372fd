import AWSAPI
import AWSCredentials
import AWSSigV4
import ConsulAPI
import Foundation
import Logging
import NIOPosix
import Registrator
import TestSupport

/// moto's server as Lambda and SSM (behind a fault-injecting proxy) and the project's Consul API
/// test server, with a registrator wired to both, as a deployment would be.
struct RegistratorFixture {
    let moto: MotoServer
    let proxy: FaultProxy
    let consul: ConsulTestServer
    let aws: AWSAPIClient
    let consulClient: ConsulClient
    let logger: Logger

    static let tags = FunctionTags.self

    static func with<T>(_ options: ConsulTestServer.Options = .init(), _ body: (RegistratorFixture) async throws -> T) async throws -> T {
        let moto = try await MotoServer()
        let proxy: FaultProxy
        do {
            proxy = try await FaultProxy(forwardingTo: moto.endpoint)
        } catch {
            moto.stop()
            throw error
        }
        let consul: ConsulTestServer
        do {
            consul = try await ConsulTestServer(options: options)
        } catch {
            await proxy.shutdown()
            moto.stop()
            throw error
        }
        var logger = Logger(label: "registrator-test")
        // Per-function errors are what several tests cause on purpose.
        logger.logLevel = .critical
        let keys = moto.fixture.registrator
        let configuration = try AWSServiceConfiguration(environment: ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": proxy.endpoint])
        let aws = try AWSAPIClient(
            configuration: configuration,
            credentials: StaticCredentialSource(Credentials(accessKeyID: keys.access_key_id, secretAccessKey: keys.secret_access_key)),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger
        )
        let consulClient = try ConsulClient(
            configuration: try ConsulConfiguration(environment: ["CONSUL_HTTP_ADDR": consul.baseURL]),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger
        )
        let fixture = RegistratorFixture(moto: moto, proxy: proxy, consul: consul, aws: aws, consulClient: consulClient, logger: logger)
        return try await withTeardown {
            try await body(fixture)
        } teardown: {
            try? await consulClient.shutdown()
            await aws.shutdown()
            await consul.shutdown()
            await proxy.shutdown()
            moto.stop()
        }
    }

    func registrator(_ configure: (inout RegistratorSettings) -> Void = { _ in }) -> Registrator {
        var settings = RegistratorSettings()
        settings.maximumConcurrency = 4
        configure(&settings)
        return Registrator(settings: settings, aws: aws, consul: consulClient, datacenter: "dc1", logger: logger)
    }

    /// Applies `scripts/moto_functions.py` commands (JSON list) and returns the created ARNs by name.
    @discardableResult
    func lambda(_ commands: [[String: Any]]) async throws -> [String: String] {
        let text = String(decoding: try JSONSerialization.data(withJSONObject: commands), as: UTF8.self)
        let output = try await moto.lambdaCommands(text)
        let decoded = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        return decoded?["arns"] as? [String: String] ?? [:]
    }

    static func enabled(_ extra: [String: String] = [:]) -> [String: String] {
        [FunctionTags.enabled: "true"].merging(extra) { $1 }
    }

    /// The requests that changed something in Consul.
    var consulWrites: [RecordedRequest] {
        consul.requests.filter { $0.method != "GET" }
    }

    func managedNames() -> [String] {
        ["orders", "billing", "billing-prod", "plain", "bad", "thumbnails"].filter { name in
            consul.instances(of: name).contains { $0.tags.contains(Registrator.managedTag) }
        }
    }
}

import AWSAPI
import Foundation
import Logging
import NIOPosix
import Registrator
import TestSupport
import Testing

/// The execution environment's setup (docs/DECISIONS.md D54): settings, the token from Parameter Store, and its
/// re-read after `ACL not found`.
@Suite(.serialized) struct RegistratorEnvironmentTests {
    func putParameter(_ moto: MotoServer, _ name: String, _ value: String) async throws {
        let script =
            "import boto3, sys; boto3.client('ssm', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]).put_parameter(Name=sys.argv[4], Value=sys.argv[5], Type='SecureString', Overwrite=True)"
        let output = try await ChildProcess.run(["python3", "-c", script, moto.endpoint, moto.fixture.admin.access_key_id, moto.fixture.admin.secret_access_key, name, value])
        #expect(output.status == 0, "\(output.stderr)")
    }

    @Test func aRotatedTokenIsReadAgainFromParameterStoreAfterACLNotFound() async throws {
        try await RegistratorFixture.with { fixture in
            try await putParameter(fixture.moto, "/consul/token", "first")
            fixture.consul.requireToken("first")
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": RegistratorFixture.enabled()]])
            var logger = Logger(label: "registrator-test")
            logger.logLevel = .critical
            let environment = try await RegistratorEnvironment(
                environment: [
                    "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": fixture.moto.endpoint,
                    "AWS_ACCESS_KEY_ID": fixture.moto.fixture.registrator.access_key_id, "AWS_SECRET_ACCESS_KEY": fixture.moto.fixture.registrator.secret_access_key,
                    "CONSUL_HTTP_ADDR": fixture.consul.baseURL, "CONSUL_HTTP_TOKEN_PATH": "/consul/token", "DATACENTER": "dc1",
                ],
                group: MultiThreadedEventLoopGroup.singleton,
                logger: logger
            )
            try await withTeardown {
                #expect(await environment.registrator.fullSync().upserted == 1)
                // The operator rotates the token: Consul forgets the old one, Parameter Store has the new one.
                try await putParameter(fixture.moto, "/consul/token", "second")
                fixture.consul.requireToken("second")
                try await fixture.lambda([["op": "create", "name": "billing", "tags": RegistratorFixture.enabled()]])
                let report = await environment.registrator.fullSync()
                #expect(!report.failed, "\(report.failures)")
                #expect(report.upserted == 1)
                #expect(fixture.managedNames() == ["orders", "billing"])
            } teardown: {
                await environment.shutdown()
            }
        }
    }

    @Test(arguments: [
        ("PAGE_SIZE", "51", "PAGE_SIZE"),
        ("MAX_CONCURRENCY", "0", "MAX_CONCURRENCY"),
        ("CONSUL_EXTENSION_DATA_TIER", "premium", "CONSUL_EXTENSION_DATA_TIER"),
        ("CONSUL_EXTENSION_DATA_PREFIX", "no-slash", "CONSUL_EXTENSION_DATA_PREFIX"),
        ("ENTERPRISE", "maybe", "ENTERPRISE"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
    ])
    func badSettingsNameTheirVariable(_ variable: String, _ value: String, _ named: String) {
        #expect {
            _ = try RegistratorSettings(environment: [variable: value])
        } throws: { error in
            (error as? RegistratorSettings.Error)?.variable == named
        }
    }

    @Test func settingsDefaultsAndParsing() throws {
        let defaults = try RegistratorSettings(environment: [:])
        #expect(defaults.nodeName == "lambdas" && defaults.pageSize == 50 && defaults.maximumConcurrency == 8 && defaults.datacenter.isEmpty)
        let set = try RegistratorSettings(environment: [
            "NODE_NAME": "fns", "ENTERPRISE": "true", "PARTITIONS": "ap1, ap2", "CONSUL_EXTENSION_DATA_PREFIX": "/data/", "CONSUL_EXTENSION_DATA_TIER": "Advanced",
        ])
        #expect(set.nodeName == "fns" && set.enterprise && set.partitions == ["ap1", "ap2"])
        #expect(set.extensionDataName(for: DesiredService(name: "orders", function: "orders", arguments: LambdaArguments(arn: ""))) == "/data/default/default/orders")
        #expect(set.extensionDataTier == .advanced)
    }
}

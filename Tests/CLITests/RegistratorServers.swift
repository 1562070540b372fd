import Foundation
import TestSupport

/// moto's server and the Consul API test server, with the environment a registrator run needs to
/// reach both (the fixture's `registrator` IAM user), for the registrator's command tests.
enum RegistratorServers {
    static func with(_ options: ConsulTestServer.Options = .init(), _ body: (MotoServer, ConsulTestServer, [String: String]) async throws -> Void) async throws {
        let moto = try await MotoServer()
        let consul: ConsulTestServer
        do {
            consul = try await ConsulTestServer(options: options)
        } catch {
            moto.stop()
            throw error
        }
        let environment = [
            "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ACCESS_KEY_ID": moto.fixture.registrator.access_key_id, "AWS_SECRET_ACCESS_KEY": moto.fixture.registrator.secret_access_key,
            "CONSUL_HTTP_ADDR": consul.baseURL,
        ]
        try await withTeardown {
            try await body(moto, consul, environment)
        } teardown: {
            await consul.shutdown()
            moto.stop()
        }
    }
}

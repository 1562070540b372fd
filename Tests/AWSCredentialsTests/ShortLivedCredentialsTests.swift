import AsyncHTTPClient
import Foundation
import Testing
import TestSupport

@testable import AWSCredentials

@Suite("Credentials that live less than the refresh window")
struct ShortLivedCredentialsTests {
    /// A real container-credentials endpoint on 127.0.0.1 that hands out credentials expiring 30 s
    /// after each fetch, as test endpoints do. The gateway made 35,875 fetches in 25 s against one;
    /// now a few seconds of requests are signed from one or two fetches.
    @Test func thirtySecondContainerCredentialsAreNotFetchedInALoop() async throws {
        try await withMetadataServer({ _ in
            let expiration = ISO8601DateFormatter().string(from: Date().addingTimeInterval(30))
            return ScriptedResponse(json: #"{"AccessKeyId":"ASIASHORT","SecretAccessKey":"s","Token":"t","Expiration":"\#(expiration)"}"#)
        }) { server, client in
            let chain = CredentialChain.standard(
                environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "\(server.baseURL)/v1/credentials", "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"],
                httpClient: client
            )
            let cache = CredentialCache(chain: chain, logger: testLogger)
            let runner = Task { await cache.run() }
            defer { runner.cancel() }
            // A request every 10 ms for 3 s, each of which needs credentials to be signed.
            let clock = ContinuousClock()
            let end = clock.now + .seconds(3)
            var signed = 0
            while clock.now < end {
                #expect(try await cache.credentials().accessKeyID == "ASIASHORT")
                signed += 1
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(signed > 100)
            // The next fetch is due about 7 s after the first (half the time left before the cut-off).
            let fetches = server.requests.count
            #expect((1...2).contains(fetches), "\(fetches) fetches of 30 s credentials in 3 s")
            #expect(server.requests.allSatisfy { $0.path == "/v1/credentials" })
        }
    }
}

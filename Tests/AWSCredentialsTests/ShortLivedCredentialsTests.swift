import AsyncHTTPClient
import Foundation
import TestSupport
import Testing

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
            // The first request waits for the first fetch (longer on a busy machine); then 300 more,
            // one every 10 ms, each of which needs credentials to be signed.
            #expect(try await cache.credentials(timeout: .seconds(30)).accessKeyID == "ASIASHORT")
            for _ in 0..<300 {
                #expect(try await cache.credentials().accessKeyID == "ASIASHORT")
                try await Task.sleep(for: .milliseconds(10))
            }
            // The next fetch is due about 7 s after the first (half the time left before the cut-off);
            // a slow machine may reach it, or the one after. Before, every request fetched.
            let fetches = server.requests.count
            #expect((1...3).contains(fetches), "\(fetches) fetches of 30 s credentials for 301 requests")
            #expect(server.requests.allSatisfy { $0.path == "/v1/credentials" })
        }
    }
}

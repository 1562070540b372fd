import ConsulAPI
import Foundation
import Logging
import NIOCore
import NIOPosix
import TestSupport
import Testing

/// Issue 23's measurement (BENCHMARKS.md, "Intentions at 10,000 services"): what the gateway reads
/// to learn the intentions of 10,000 linked services with one `*` intention and one intention per
/// service, through the service-intentions list against the match query. It prints the figures;
/// it asserts only what the design rests on, never a time.
@Suite("Intentions at 10,000 linked services: list against match (a measurement)")
struct IntentionsScaleMeasurement {
    static let services = (1...10_000).map { "lambda-\(String(format: "%05d", $0))" }

    @Test func theListCarriesEachIntentionOnceWhereTheMatchAnswerRepeatsTheWildcard() async throws {
        let consul = try await ConsulTestServer()
        let client = try ConsulClient(
            configuration: try ConsulConfiguration(environment: ["CONSUL_HTTP_ADDR": consul.baseURL]),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "consul")
        )
        try await withTeardown {
            // Entries as Consul stores them (`Type` is filled in on write; the list adds `Precedence`).
            try consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"api","Action":"deny","Type":"consul"}]}"#)
            for name in Self.services {
                try consul.setConfigEntry(#"{"Kind":"service-intentions","Name":"\#(name)","Sources":[{"Name":"web","Action":"allow","Type":"consul"}]}"#)
            }
            let listPath = "/v1/config/service-intentions"
            let list = try await client.send(.GET, listPath)
            let entries = try JSONDecoder().decode([ServiceIntentionsEntry].self, from: Data(list.body.readableBytesView))
            #expect(entries.count == 10_001)

            // The match query as it was watched: one request naming every service (its URL), answered here in chunks
            // of 1,000 names (the same bytes in all; a chunked watch set would need 10 long polls).
            let matchPath = "/v1/connect/intentions/match"
            let oneURL = matchPath + "?by=destination" + Self.services.map { "&name=\($0)" }.joined()
            var matchBytes = 0
            var chunkURL = 0
            var perService: [Int] = []
            for start in stride(from: 0, to: Self.services.count, by: 1_000) {
                let chunk = Array(Self.services[start..<min(start + 1_000, Self.services.count)])
                let query = [("by", "destination")] + chunk.map { ("name", $0) }
                chunkURL = max(chunkURL, matchPath.utf8.count + 1 + query.map { "\($0.0)=\($0.1)" }.joined(separator: "&").utf8.count)
                let answer = try await client.send(.GET, matchPath, query: query)
                matchBytes += answer.body.readableBytes
                let matches = try JSONDecoder().decode(IntentionMatches.self, from: Data(answer.body.readableBytesView))
                perService += chunk.map { matches[$0]?.count ?? 0 }
            }
            #expect(perService.allSatisfy { $0 == 2 }, "each service: its own intention and the wildcard one")

            print(
                """
                intentions at 10,000 services (one * intention, one per service):
                  list  GET \(listPath): URL \(listPath.utf8.count) bytes, answer \(list.body.readableBytes) bytes, 1 long poll
                  match one request: URL \(oneURL.utf8.count) bytes, answer \(matchBytes) bytes, 1 long poll
                  match in 10 chunks of 1,000 names: URL \(chunkURL) bytes each, answers \(matchBytes) bytes in all, 10 long polls
                """
            )
            #expect(list.body.readableBytes * 2 < matchBytes)
            #expect(oneURL.utf8.count > 150_000)
        } teardown: {
            try? await client.shutdown()
            await consul.shutdown()
        }
    }
}

import AWSSigV4
import Testing

@testable import LambdaInvoke

@Suite("Each function's prepared Invoke shape")
struct InvokeTemplatesTests {
    /// The template asked for last is kept apart from the rest (`recent`): calls that alternate
    /// between functions, endpoints, regions and the streaming API each get their own shape.
    @Test func alternatingCallsGetTheirOwnShapes() {
        let templates = InvokeTemplates()
        let keyCache = SigningKeyCache()
        let east = LambdaEndpointResolver.Endpoint(baseURL: "https://lambda.us-east-1.amazonaws.com", host: "lambda.us-east-1.amazonaws.com", region: "us-east-1")
        let west = LambdaEndpointResolver.Endpoint(baseURL: "https://lambda.us-west-2.amazonaws.com", host: "lambda.us-west-2.amazonaws.com", region: "us-west-2")
        let calls: [(function: String, endpoint: LambdaEndpointResolver.Endpoint, streaming: Bool, path: String, region: String)] = [
            ("orders", east, false, "/2015-03-31/functions/orders/invocations", "us-east-1"),
            ("billing", east, false, "/2015-03-31/functions/billing/invocations", "us-east-1"),
            ("orders", east, true, "/2021-11-15/functions/orders/response-streaming-invocations", "us-east-1"),
            ("orders", west, false, "/2015-03-31/functions/orders/invocations", "us-west-2"),
        ]
        for round in 0..<3 {
            for call in calls + calls.reversed() {
                let prepared = templates.template(function: call.function, endpoint: call.endpoint, streaming: call.streaming, keyCache: keyCache)
                #expect(prepared.path == call.path, "round \(round)")
                #expect(prepared.signer.region == call.region)
                // Twice in a row: the kept one.
                #expect(templates.template(function: call.function, endpoint: call.endpoint, streaming: call.streaming, keyCache: keyCache) === prepared)
            }
        }
    }
}

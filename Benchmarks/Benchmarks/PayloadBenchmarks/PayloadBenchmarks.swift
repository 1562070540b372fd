import Benchmark
import Foundation
import LambdaPayload
import NIOCore

/// A typical mesh call: a 1 KB JSON POST with a dozen headers, and a shaped function result.
let benchmarks: @Sendable () -> Void = {
    let body = "{\"items\":[" + (0..<30).map { "{\"sku\":\"A-\($0)\",\"qty\":\($0 % 5)}" }.joined(separator: ",") + "]}"
    let request = HTTPRequestView(
        method: "POST",
        path: "/orders/42/items",
        query: "expand=true&q=a%20b",
        headers: [
            HTTPField("host", "orders"), HTTPField("content-type", "application/json; charset=utf-8"),
            HTTPField("content-length", String(body.utf8.count)), HTTPField("accept", "*/*"),
            HTTPField("user-agent", "curl/8.5.0"), HTTPField("x-request-id", "5f0c7d1e-8a0b-4b55-9b1e-2f8f2f5f6a01"),
            HTTPField("x-forwarded-proto", "https"), HTTPField("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            HTTPField("x-b3-spanid", "e457b5a2e4d86bd1"), HTTPField("x-b3-sampled", "1"),
            HTTPField(
                "x-forwarded-client-cert",
                "By=spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/orders;Hash=abc;Subject=\"\";URI=spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web"
            ),
        ],
        authority: "orders",
        body: ByteBuffer(string: body),
        receivedAt: Date(timeIntervalSince1970: 1_768_037_400)
    )
    let context = PayloadContext(serviceName: "orders", accountID: "123456789012")
    let result = LambdaInvocationResult(
        statusCode: 200,
        requestID: "a1b2c3",
        payload: ByteBuffer(string: #"{"statusCode":201,"headers":{"content-type":"application/json","x-order":"42"},"cookies":["a=1; Path=/"],"body":"{\"id\":42,\"status\":\"created\"}"}"#)
    )
    let configuration = Benchmark.Configuration(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput], maxDuration: .seconds(3))

    Benchmark("Envoy request encoding, 1 KB JSON body", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try RequestEncoder.encode(request, format: .envoy, context: context))
        }
    }

    Benchmark("API Gateway v2 request encoding, 1 KB JSON body", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try RequestEncoder.encode(request, format: .apiGatewayV2, context: context))
        }
    }

    Benchmark("Envoy response decoding, shaped result", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try ResponseDecoder.response(for: result, format: .envoy, passthrough: false, method: "POST"))
        }
    }
}

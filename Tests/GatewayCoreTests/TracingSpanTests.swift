import Foundation
import GatewayCore
import InMemoryTracing
import Synchronization
import TestSupport
import Testing
import Tracing

/// swift-distributed-tracing's in-memory tracer, propagating W3C `traceparent` as swift-otel's
/// default propagator does (the in-memory tracer's own propagation uses header names of its own).
struct W3CRecordingTracer: Tracer {
    let recorder = InMemoryTracer(
        idGenerator: InMemoryTracer.IDGenerator(
            nextTraceID: { String(repeating: "ab", count: 16) },
            nextSpanID: {
                let next = W3CRecordingTracer.spans.withLock { count in
                    count += 1
                    return count
                }
                return String(format: "%016x", 0xc0de_0000 + next)
            }
        )
    )
    static let spans = Mutex(0)

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind, at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> InMemorySpan {
        recorder.startSpan(operationName, context: context(), ofKind: kind, at: instant(), function: function, file: fileID, line: line)
    }

    func forceFlush() { recorder.forceFlush() }

    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract) where Extract.Carrier == Carrier {
        guard let value = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = value.split(separator: "-")
        guard parts.count == 4 else { return }
        context.inMemorySpanContext = InMemorySpanContext(traceID: String(parts[1]), spanID: String(parts[2]), parentSpanID: nil)
    }

    func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject) where Inject.Carrier == Carrier {
        guard let span = context.inMemorySpanContext else { return }
        injector.inject("00-\(span.traceID)-\(span.spanID)-01", forKey: "traceparent", into: &carrier)
    }
}

/// With a tracer bootstrapped, the gateway's span around the Lambda call continues the caller's
/// trace and is the function's parent (its X-Amzn-Trace-Id names the gateway's span).
@Suite("The gateway's span around the Lambda call", .serialized)
struct TracingSpanTests {
    @Test func theSpanContinuesTheCallersTraceAndParentsTheFunction() async throws {
        let tracer = W3CRecordingTracer()
        try await GatewayFixture.with(tracer: tracer, lambdaHandler: echoPayload) { gateway in
            let traced = try await gateway.curl("orders", path: "/traced", extra: ["-H", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
            #expect(traced.status == 201)
            let spans = tracer.recorder.finishedSpans
            let span = try #require(spans.first)
            #expect(spans.count == 1 && span.operationName == "Lambda.Invoke")
            #expect(span.spanContext.traceID == "4bf92f3577b34da6a3ce929d0e0e4736" && span.spanContext.parentSpanID == "00f067aa0ba902b7")
            #expect(span.attributes["faas.invoked_name"]?.toSpanAttribute() == "orders".toSpanAttribute())
            #expect(span.attributes["http.response.status_code"]?.toSpanAttribute() == 201.toSpanAttribute())
            // The function's parent is the gateway's span, in the caller's trace.
            let sent = try #require(gateway.lambda.requests.first?.header("x-amzn-trace-id"))
            #expect(sent == "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=\(span.spanContext.spanID);Sampled=1")
            // The caller learns the gateway's span (W3C traceresponse).
            #expect(traced.headers.lowercased().contains("traceresponse: 00-4bf92f3577b34da6a3ce929d0e0e4736-\(span.spanContext.spanID)-01"), "\(traced.headers)")

            // No caller trace: the span starts one, and the function still joins it.
            let fresh = try await gateway.curl("orders", path: "/fresh")
            #expect(fresh.status == 201)
            let root = try #require(tracer.recorder.finishedSpans.last)
            #expect(root.spanContext.parentSpanID == nil && root.spanContext.traceID == String(repeating: "ab", count: 16))
            #expect(gateway.lambda.requests.last?.header("x-amzn-trace-id") == "Root=1-abababab-abababababababababababab;Parent=\(root.spanContext.spanID);Sampled=1")
        }
    }

    @Test func aFailedCallIsAnErrorSpan() async throws {
        let tracer = W3CRecordingTracer()
        try await GatewayFixture.with(
            tracer: tracer, lambdaHandler: { _ in ScriptedResponse(status: 429, headers: [("x-amzn-ErrorType", "TooManyRequestsException")], json: #"{"message":"Rate exceeded"}"#) }
        ) { gateway in
            let answer = try await gateway.curl("orders", path: "/busy", extra: ["-d", "{}"])
            #expect(answer.status == 429)
            let span = try #require(tracer.recorder.finishedSpans.first)
            #expect(span.status?.code == .error)
            #expect(span.attributes["error.type"]?.toSpanAttribute() == "TooManyRequestsException".toSpanAttribute())
        }
    }
}

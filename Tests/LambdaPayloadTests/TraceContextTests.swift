import LambdaPayload
import Testing

/// The caller's trace as the Invoke call's `X-Amzn-Trace-Id`: fixed vectors for each format, the
/// order among them, and malformed headers ignored.
@Suite("Trace propagation")
struct TraceContextTests {
    static func trace(_ fields: [(String, String)]) -> TraceContext? {
        TraceContext(headers: fields.map { HTTPField($0.0, $0.1) })
    }

    @Test(
        arguments: [
            // W3C Trace Context's own example, sampled and not.
            (
                "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1",
                "4bf92f3577b34da6a3ce929d0e0e4736"
            ),
            (
                "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=0",
                "4bf92f3577b34da6a3ce929d0e0e4736"
            ),
            // Other flags: only the sampled bit counts.
            (
                "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1",
                "4bf92f3577b34da6a3ce929d0e0e4736"
            ),
            // A later version with a field more is read as version 00.
            (
                "traceparent", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1",
                "4bf92f3577b34da6a3ce929d0e0e4736"
            ),
            // B3 single, 128- and 64-bit trace ids (the latter padded), with and without a decision.
            (
                "b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", "Root=1-80f198ee-56343ba864fe8b2a57d3eff7;Parent=e457b5a2e4d86bd1;Sampled=1",
                "80f198ee56343ba864fe8b2a57d3eff7"
            ),
            ("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-0", "Root=1-00000000-00000000a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=0", "0000000000000000a3ce929d0e0e4736"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", "Root=1-80f198ee-56343ba864fe8b2a57d3eff7;Parent=e457b5a2e4d86bd1;Sampled=?", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d", "Root=1-80f198ee-56343ba864fe8b2a57d3eff7;Parent=e457b5a2e4d86bd1;Sampled=1", "80f198ee56343ba864fe8b2a57d3eff7"),
            // A caller's own X-Ray header: its Root, Parent and Sampled.
            (
                "X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                "1-5759e988-bd862e3fe1be46a994272793"
            ),
        ] as [(String, String, String, String)])
    func eachFormatMapsToXRay(name: String, value: String, header: String, traceID: String) throws {
        let context = try #require(Self.trace([("host", "orders"), (name, value)]))
        #expect(context.amazonTraceHeader == header)
        #expect(context.traceID == traceID)
    }

    @Test func b3MultiHeadersAsConsulsEnvoySidecarsSendThem() throws {
        let ids = [("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"), ("x-b3-spanid", "a2fb4a1d1a96d312")]
        #expect(try #require(Self.trace(ids + [("x-b3-sampled", "1")])).amazonTraceHeader == "Root=1-463ac35c-9f6413ad48485a3953bb6124;Parent=a2fb4a1d1a96d312;Sampled=1")
        #expect(try #require(Self.trace(ids + [("X-B3-Sampled", "false")])).amazonTraceHeader.hasSuffix(";Sampled=0"))
        #expect(try #require(Self.trace(ids)).amazonTraceHeader.hasSuffix(";Sampled=?"))
        #expect(try #require(Self.trace(ids + [("x-b3-sampled", "0"), ("x-b3-flags", "1")])).amazonTraceHeader.hasSuffix(";Sampled=1"), "debug means sampled")
        #expect(Self.trace([ids[0]]) == nil, "a trace id without a span id")
        #expect(Self.trace(ids + [("x-b3-sampled", "maybe")]) == nil)
    }

    @Test func w3cComesFirstThenB3ThenTheCallersOwn() throws {
        let w3c = ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        let b3 = ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
        let amazon = ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793")
        #expect(Self.trace([amazon, b3, w3c])?.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(Self.trace([amazon, b3])?.traceID == "80f198ee56343ba864fe8b2a57d3eff7")
        // A malformed one gives way to the next.
        #expect(Self.trace([("traceparent", "00-zz"), amazon])?.amazonTraceHeader == amazon.1)
        #expect(Self.trace([("traceparent", "00-zz"), ("b3", "1"), ("content-type", "text/plain")]) == nil)
    }

    @Test(arguments: [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // version 00 has no more fields
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper-case hex
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  // dashes in the wrong places
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // a later version: a `-` must follow
    ])
    func aMalformedTraceparentIsIgnored(value: String) {
        #expect(Self.trace([("traceparent", value)]) == nil, "\(value)")
    }

    @Test(arguments: [
        "1", "0", "d",  // a decision alone
        "80f198ee56343ba864fe8b2a57d3eff7",  // no span id
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-short",
        "80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1",  // 31 digits
        "00000000000000000000000000000000-e457b5a2e4d86bd1",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-more",
    ])
    func aMalformedB3IsIgnored(value: String) {
        #expect(Self.trace([("b3", value)]) == nil, "\(value)")
    }

    /// `--trace-sampling ignore`: the trace goes on, its sampling decision left to X-Ray.
    @Test func aTraceWithoutItsSamplingDecision() throws {
        let w3c = try #require(Self.trace([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]))
        #expect(w3c.withoutSamplingDecision.amazonTraceHeader == "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=?")
        #expect(w3c.withoutSamplingDecision.traceID == w3c.traceID)
        let own = try #require(Self.trace([("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793")]))
        #expect(own.withoutSamplingDecision.amazonTraceHeader == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?")
    }

    @Test func aCallersXRayHeaderIsRebuiltFromRootParentAndSampledOnly() {
        let root = "Root=1-5759e988-bd862e3fe1be46a994272793"
        // Lineage (loop detection), Self and made-up fields never reach AWS from a caller.
        #expect(
            Self.trace([("x-amzn-trace-id", "\(root);Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5;Self=1-x;Evil=1")])?.amazonTraceHeader
                == "\(root);Parent=53995c3f42cd8ad8;Sampled=1")
        #expect(Self.trace([("x-amzn-trace-id", "Sampled=?; Parent=53995c3f42cd8ad8; \(root)")])?.amazonTraceHeader == "\(root);Parent=53995c3f42cd8ad8;Sampled=?")
        // A malformed Parent or Sampled is left out; the trace goes on.
        #expect(Self.trace([("x-amzn-trace-id", "\(root);Parent=xyz;Sampled=yes")])?.amazonTraceHeader == root)
        // No Root, or a Root that is not X-Ray's: no trace.
        for value in ["Self=1-abc;Sampled=1", "Root=1-a b", "Root=1-5759E988-bd862e3fe1be46a994272793", "Root=2-5759e988-bd862e3fe1be46a994272793", "Root=1-5759e988bd862e3fe1be46a994272793", ""] {
            #expect(Self.trace([("x-amzn-trace-id", value)]) == nil, "\(value)")
        }
        #expect(Self.trace([("x-amzn-trace-id", root + ";" + String(repeating: "a", count: TraceContext.maximumCallerHeaderBytes))]) == nil)
    }
}

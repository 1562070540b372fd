import NIOHPACK
import TestSupport
import Testing

@testable import GatewayCore

/// The gateway checks a request's header block itself (`HTTP2FieldRules`, in
/// `HTTP2StreamStateMachine.requestHead`), with NIO's own check turned off. These tests hold its
/// verdicts to NIO's: the same block, as bytes on the wire, must be refused by both or by neither.
@Suite("HTTP/2 field rules, against NIO's header validation")
struct HTTP2FieldRulesTests {
    /// NIO's verdict (`NIOHTTP2Verdict`): it lets the request through, or resets its stream.
    static func nioAccepts(_ block: [UInt8], trailers: [UInt8]? = nil) throws -> Bool {
        try #require(NIOHTTP2Verdict.accepts(head: block, trailers: trailers), "NIO neither reset the stream nor passed the request on")
    }

    /// The gateway's verdict on the same bytes, decoded by NIO's HPACK decoder.
    static func gatewayAccepts(_ block: [UInt8], trailers: [UInt8]? = nil) throws -> Bool {
        let head = try #require(NIOHTTP2Verdict.headers(in: block))
        let decodedTrailers = try trailers.map { try #require(NIOHTTP2Verdict.headers(in: $0)) }
        return !HTTP2FieldRules.isMalformed(request: head, trailers: decodedTrailers)
    }

    static let valid: [(String, String)] = [(":method", "GET"), (":scheme", "https"), (":path", "/a"), (":authority", "orders")]

    /// Each rule, broken once, and blocks that keep every rule.
    static let cases: [(String, [(String, String)])] = [
        ("valid", valid),
        ("valid with fields", valid + [("accept", "*/*"), ("x-trace", "a b\tc"), ("te", "trailers"), ("x-obs", "caf\u{E9}")]),
        ("valid without :authority", Array(valid.prefix(3))),
        ("valid CONNECT", [(":method", "CONNECT"), (":authority", "orders:443")]),
        ("upper-case name", valid + [("Accept", "*/*"), ("X-Up", "1")]),
        ("name with a space", valid + [("x y", "1")]),
        ("connection", valid + [("connection", "close")]),
        ("keep-alive", valid + [("keep-alive", "5")]),
        ("proxy-connection", valid + [("proxy-connection", "x")]),
        ("transfer-encoding", valid + [("transfer-encoding", "chunked")]),
        ("upgrade", valid + [("upgrade", "h2c")]),
        ("te gzip", valid + [("te", "gzip")]),
        ("value with CR", valid + [("x-a", "a\rb")]),
        ("value with LF", valid + [("x-a", "a\nb")]),
        ("value with NUL", valid + [("x-a", "a\u{0}b")]),
        ("pseudo-header after a field", [(":method", "GET"), (":scheme", "https"), ("accept", "*/*"), (":path", "/a")]),
        ("unknown pseudo-header", valid + [(":foo", "1")]),
        (":protocol", valid + [(":protocol", "websocket")]),
        (":status in a request", valid + [(":status", "200")]),
        ("duplicate :path", [(":method", "GET"), (":scheme", "https"), (":path", "/a"), (":path", "/b")]),
        ("missing :scheme", [(":method", "GET"), (":path", "/a")]),
        ("missing :method", [(":scheme", "https"), (":path", "/a")]),
        ("empty :path", [(":method", "GET"), (":scheme", "https"), (":path", "")]),
        ("space in :path", [(":method", "GET"), (":scheme", "https"), (":path", "/a b")]),
        ("DEL in :method", [(":method", "GE\u{7F}T"), (":scheme", "https"), (":path", "/a")]),
        ("upper-case pseudo-header", [(":Method", "GET"), (":scheme", "https"), (":path", "/a")]),
        ("non-ASCII name", valid + [("x\u{E9}", "1")]),
        ("CONNECT with :path", [(":method", "CONNECT"), (":authority", "orders:443"), (":path", "/")]),
        ("CONNECT without :authority", [(":method", "CONNECT")]),
    ]

    @Test(arguments: cases.map(\.0))
    func eachRuleAsNIOHasIt(name: String) throws {
        let fields = Self.cases.first { $0.0 == name }!.1
        let block = RawH2.block(fields)
        let nio = try Self.nioAccepts(block)
        #expect(try Self.gatewayAccepts(block) == nio)
        // The cases are meant both ways: the names say which.
        #expect(nio == name.hasPrefix("valid"))
    }

    @Test func aNameIsALowerCaseToken() {
        #expect(HTTP2FieldRules.isLowerCaseToken("x-a_b.c!#$%&'*+^`|~09"))
        for name in ["", "X-A", "x a", "x:a", "x\u{80}", "x\"", "x(", "x@"] { #expect(!HTTP2FieldRules.isLowerCaseToken(name), "\(name)") }
    }

    @Test(arguments: [
        [("x-trailer", "1")], [(":path", "/b")], [("Trailer", "1")], [("connection", "close")], [("x-a", "a\rb")], [("te", "gzip")],
    ])
    func trailersAsNIOHasThem(trailers: [(String, String)]) throws {
        let head = RawH2.block(Self.valid.map { $0.0 == ":method" ? ($0.0, "POST") : $0 })
        let block = RawH2.block(trailers)
        #expect(try Self.gatewayAccepts(head, trailers: block) == Self.nioAccepts(head, trailers: block))
    }

    /// Blocks made at random from pieces that keep or break the rules: the two verdicts agree on
    /// every one (a fixed seed, so a failure repeats).
    @Test func randomBlocksGetNIOsVerdict() throws {
        var random = SplitMix(seed: 0x5EED_2026)
        let pseudo = [
            (":method", "GET"), (":method", "CONNECT"), (":scheme", "https"), (":path", "/a"), (":path", ""), (":path", "/a b"), (":authority", "orders"), (":protocol", "x"), (":x", "1"),
            (":Path", "/"),
        ]
        let names = ["accept", "x-a", "te", "connection", "X-Up", "x y", "upgrade", "host", "content-type", "x_under", "x\u{80}"]
        let values = ["1", "trailers", "a b", "a\tb", "a\rb", "a\nb", "a\u{0}b", "caf\u{E9}", "", " padded ", "\u{7F}"]
        var verdicts = (accepted: 0, refused: 0)
        for _ in 0..<400 {
            // A valid request, then up to three changes: a field added, one taken out, two swapped.
            var fields = Self.valid + [("accept", "*/*")]
            for _ in 0..<random.next(below: 4) {
                switch random.next(below: 4) {
                case 0: fields.insert(pseudo[random.next(below: pseudo.count)], at: random.next(below: fields.count + 1))
                case 1: fields.insert((names[random.next(below: names.count)], values[random.next(below: values.count)]), at: random.next(below: fields.count + 1))
                case 2: if !fields.isEmpty { fields.remove(at: random.next(below: fields.count)) }
                default: if !fields.isEmpty { fields.swapAt(random.next(below: fields.count), random.next(below: fields.count)) }
                }
            }
            let block = RawH2.block(fields)
            let nio = try Self.nioAccepts(block)
            #expect(try Self.gatewayAccepts(block) == nio, "\(fields)")
            if nio { verdicts.accepted += 1 } else { verdicts.refused += 1 }
        }
        #expect(verdicts.accepted > 40 && verdicts.refused > 40, "both verdicts are tried: \(verdicts)")
    }
}

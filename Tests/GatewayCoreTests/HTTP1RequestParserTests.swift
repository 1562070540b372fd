import LambdaPayload
import NIOCore
import NIOHTTP1
import Testing

@testable import GatewayCore

@Suite("HTTP/1 request parser")
struct HTTP1RequestParserTests {
    struct Outcome: Equatable {
        /// Each request as `METHOD target version | fields | body`, with `(end)` once it ended.
        var requests: [String] = []
        var error: String?
        var tooLarge = false
    }

    /// Feeds `text` in pieces of `piece` bytes (0: all at once).
    static func parse(_ text: String, piece: Int = 0) -> Outcome {
        parse(Array(text.utf8), piece: piece)
    }

    static func parse(_ bytes: [UInt8], piece: Int = 0) -> Outcome {
        var parser = HTTP1RequestParser()
        var outcome = Outcome()
        var buffer = ByteBuffer()
        do throws(HTTP1Syntax.Error) {
            var offset = 0
            repeat {
                let end = piece == 0 ? bytes.count : min(offset + piece, bytes.count)
                buffer.writeBytes(bytes[offset..<end])
                offset = end
                while let part = try parser.next(&buffer) {
                    switch part {
                    case .head(let head):
                        outcome.requests.append("\(head.method.rawValue) \(head.uri) \(head.version) | \(head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ",")) | ")
                    case .body(let bytes):
                        outcome.requests[outcome.requests.count - 1] += String(buffer: bytes)
                    case .end:
                        outcome.requests[outcome.requests.count - 1] += " (end)"
                    }
                }
            } while offset < bytes.count
        } catch {
            outcome.error = error.description
            outcome.tooLarge = error.isTooLarge
        }
        return outcome
    }

    static func expectSameInPieces(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Outcome {
        let whole = parse(text)
        for piece in [1, 2, 3, 7, 64] {
            #expect(parse(text, piece: piece) == whole, "in pieces of \(piece)", sourceLocation: sourceLocation)
        }
        return whole
    }

    @Test func pipelinedRequestsOfEveryFramingAreReadInOrder() {
        let outcome = Self.expectSameInPieces(
            "\r\n\r\nGET /a?x=1#f HTTP/1.1\r\nHost: orders\r\nX-Padded:  v  \t\r\n\r\n"
                + "POST /b HTTP/1.1\r\nHost: orders\r\nContent-Length: 5\r\n\r\nhello"
                + "PUT /c HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n3;x=\"y z\"\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
                + "\r\nOPTIONS * HTTP/1.1\r\nHost: orders\r\n\r\n")
        #expect(outcome.error == nil)
        #expect(
            outcome.requests == [
                "GET /a?x=1#f HTTP/1.1 | Host=orders,X-Padded=v |  (end)",
                "POST /b HTTP/1.1 | Host=orders,Content-Length=5 | hello (end)",
                "PUT /c HTTP/1.1 | Host=orders,Transfer-Encoding=chunked | abcde (end)",
                "OPTIONS * HTTP/1.1 | Host=orders |  (end)",
            ])
    }

    /// An empty line before a request line is skipped; a bare LF after it is refused, whether
    /// the empty line's CR came in the same read as its LF or alone (the fuzz target's find: the
    /// head search then started one byte late and missed the LF).
    @Test func aBareLFAfterAnEmptyLineIsRefusedHoweverTheBytesArrive() {
        let outcome = Self.expectSameInPieces("GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(outcome.requests == ["GET / HTTP/1.1 | Host=a |  (end)"])
        #expect(outcome.error == "a line of the head ends in a bare LF")
        // The CR alone at the end of one read, the rest in the next.
        var parser = HTTP1RequestParser()
        var buffer = ByteBuffer(string: "\r")
        #expect((try? parser.next(&buffer)) == .some(nil))
        buffer.writeString("\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(throws: HTTP1Syntax.Error.self) { try parser.next(&buffer) }
    }

    @Test func theFormsOfATargetLlhttpReadsAreRead() {
        for text in [
            "GET http://orders/x HTTP/1.1\r\n\r\n", "GET https://orders.example:8443 HTTP/1.1\r\n\r\n", "CONNECT orders:443 HTTP/1.1\r\n\r\n",
            "CONNECT /x HTTP/1.1\r\n\r\n", "M-SEARCH * HTTP/1.1\r\n\r\n", "GET //x HTTP/1.0\r\n\r\n",
        ] {
            let outcome = Self.parse(text)
            #expect(outcome.error == nil && outcome.requests.count == 1, "\(text.debugDescription): \(outcome)")
        }
    }

    @Test func aConnectHasNoBodyWhateverItsFieldsSay() {
        let outcome = Self.parse("CONNECT orders:443 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd")
        #expect(outcome.requests == ["CONNECT orders:443 HTTP/1.1 | Content-Length=4 |  (end)"])
    }

    @Test(arguments: [
        "GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "CONNECT orders:443 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        // Chunks in HTTP/1.0 are faulty framing (RFC 9112 §6.1), keep-alive or not.
        "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ])
    func afterARequestThatEndsTheConnectionNothingIsParsed(first: String) {
        let outcome = Self.parse(first + "GET /next HTTP/1.1\r\n\r\n" + String(repeating: "garbage\r\n", count: 100))
        #expect(outcome.error == nil)
        #expect(outcome.requests.count == 1, "\(outcome)")
    }

    /// Whether parsing stops after a request, for every mix of `Connection` options with and
    /// without an `Upgrade`: as NIO's `isKeepAlive` and `contains(name: "upgrade")` read the head.
    @Test func parsingStopsAfterARequestAsNIOReadsItsHead() {
        for (head, nioEnds) in HTTP1ConnectionStateMachineTests.connectionCases {
            let fields = head.headers.map { "\($0.name): \($0.value)\r\n" }.joined()
            let outcome = Self.parse("GET / HTTP/\(head.version.major).\(head.version.minor)\r\n" + fields + "\r\nGET /next HTTP/1.1\r\n\r\n")
            #expect(outcome.error == nil, "\(head)")
            #expect(outcome.requests.count == (nioEnds ? 1 : 2), "\(head): \(outcome.requests)")
        }
    }

    /// The parser splits `Connection` at comma bytes too (`ConnectionOptions`), whatever follows
    /// a comma: it stops after `close,` and a combining mark, as the reader's checks do.
    @Test func parsingStopsAfterACloseBeforeACombiningMark() {
        let outcome = Self.parse(Array("GET / HTTP/1.1\r\nConnection: close,".utf8) + [0xCC, 0x81] + Array("\r\n\r\nGET /next HTTP/1.1\r\n\r\n".utf8))
        #expect(outcome.error == nil && outcome.requests.count == 1, "\(outcome)")
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nx-big: \(String(repeating: "a", count: 61 * 1024))\r\n\r\n", "fields are over"),
        ("GET /\(String(repeating: "a", count: 61 * 1024)) HTTP/1.1\r\n\r\n", "target is over"),
        ("GET / HTTP/1.1\r\n" + (0...100).map { "x-\($0): 1\r\n" }.joined() + "\r\n", "more than 100 fields"),
        ("GET / HTTP/1.1\r\n" + String(repeating: "x-a:                                                  1\r\n", count: 1200), "head is over"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + String(repeating: "t: 0123456789012345678901234567890\r\n", count: 2000), "trailer section is over"),
    ])
    func headsOverTheLimitsAreTooLarge(text: String, expected: String) {
        for piece in [0, 4096] {
            let outcome = Self.parse(text, piece: piece)
            #expect(outcome.error?.contains(expected) == true && outcome.tooLarge, "\(outcome.error ?? "no error")")
        }
    }

    @Test(arguments: [
        ("BAD METHOD / HTTP/1.1\r\n\r\n", "not one the gateway knows"),
        ("get / HTTP/1.1\r\n\r\n", "not one the gateway knows"),
        ("MSEARCH * HTTP/1.1\r\n\r\n", "not one the gateway knows"),
        ("G(T / HTTP/1.1\r\n\r\n", "method is not a token"),
        (" / HTTP/1.1\r\n\r\n", "no method"),
        ("GET  HTTP/1.1\r\n\r\n", "no target"),
        ("GET /a\u{7F} HTTP/1.1\r\n\r\n", "not visible ASCII"),
        ("GET x?u=http://h/ok HTTP/1.1\r\n\r\n", "neither a path"),
        ("GET http:/x HTTP/1.1\r\n\r\n", "neither a path"),
        ("CONNECT a`b:443 HTTP/1.1\r\n\r\n", "neither a path"),
        ("GET / HTTP/2.0\r\n\r\n", "does not end in HTTP/1.0 or HTTP/1.1"),
        ("GET / HTTP/1.1 \r\n\r\n", "does not end in HTTP/1.0 or HTTP/1.1"),
        ("GET / HTTP/1.1\nHost: x\n\n", "bare LF"),
        ("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "folded"),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", "not a token"),
        ("GET / HTTP/1.1\r\nHost: a\u{1}b\r\n\r\n", "control byte"),
        ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "a second Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx", "not a number"),
        ("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", "not a number"),
        ("POST / HTTP/1.1\r\nContent-Length: 1\t\r\n\r\nx", "not a number"),
        ("POST / HTTP/1.1\r\nContent-Length: 1 \r\n\r\nx", "not a number"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n", "both Content-Length and Transfer-Encoding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "not the one coding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n", "other than an extension"),
        // A chunk line over its limit is malformed (400), not a head too large (431).
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "x", count: 4100), "chunk size line is over"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", "framing field in the trailer"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\ncontent-length: 1\r\n\r\n", "framing field in the trailer"),
    ])
    func malformedRequestsAreErrorsThatSayWhy(text: String, expected: String) {
        for piece in [0, 1] {
            let outcome = Self.parse(text, piece: piece)
            #expect(outcome.error?.contains(expected) == true && !outcome.tooLarge, "\(text.debugDescription) in pieces of \(piece): \(String(describing: outcome.error))")
        }
    }

    @Test func aNonASCIITargetIsRefused() {
        let outcome = Self.parse(Array("GET /admin".utf8) + [0xCC, 0x81] + Array(" HTTP/1.1\r\n\r\n".utf8))
        #expect(outcome.error?.contains("not visible ASCII") == true)
    }

    @Test func theParserKnowsWhenARequestIsHalfRead() throws {
        var parser = HTTP1RequestParser()
        var buffer = ByteBuffer(string: "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
        #expect(!parser.isInsideBody)
        _ = try parser.next(&buffer)
        #expect(parser.isInsideBody)
        _ = try parser.next(&buffer)
        buffer.writeString("cd")
        _ = try parser.next(&buffer)
        #expect(try parser.next(&buffer).map { if case .end = $0 { true } else { false } } == true)
        #expect(!parser.isInsideBody)
    }
}

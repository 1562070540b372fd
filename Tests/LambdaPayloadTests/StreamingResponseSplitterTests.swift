import LambdaPayload
import NIOCore
import Testing

/// A streamed answer's head and body, as Lambda function URLs shape them, from chunks cut anywhere.
@Suite("Streamed response prelude")
struct StreamingResponseSplitterTests {
    static let prelude = #"{"statusCode":201,"headers":{"Content-Type":"text/event-stream","Connection":"keep-alive","x-a":"1"},"cookies":["s=1; Secure"]}"#

    /// Every event of `bytes` fed in pieces of `size`, then `finish`; the body pieces joined.
    static func run(_ bytes: [UInt8], pieces size: Int, contentType: String? = nil) throws -> (head: LambdaHTTPResponse?, body: String, heads: Int) {
        var splitter = StreamingResponseSplitter(contentType: contentType)
        var events: [StreamingResponseSplitter.Event] = []
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + size)
            events += try splitter.append(ByteBuffer(bytes: bytes[start..<end]))
            start = end
        }
        events += try splitter.finish()
        var head: LambdaHTTPResponse?
        var heads = 0
        var body = ""
        for event in events {
            switch event {
            case .head(let response):
                head = response
                heads += 1
                #expect(body.isEmpty, "the head comes first")
            case .body(let piece): body += String(buffer: piece)
            }
        }
        return (head, body, heads)
    }

    @Test func aPreludeAndItsNULsMakeTheHeadWhereverTheChunksAreCut() throws {
        let bytes = Array(Self.prelude.utf8) + [UInt8](repeating: 0, count: 8) + Array("data: a\n\ndata: b\n\n".utf8)
        for contentType in [nil, "application/vnd.awslambda.http-integration-response"] {
            for size in 1...bytes.count {
                let result = try Self.run(bytes, pieces: size, contentType: contentType)
                #expect(result.heads == 1)
                #expect(result.head?.status == 201, "pieces of \(size)")
                // The buffered path's header rules: names lower-cased, hop-by-hop dropped, cookies as set-cookie.
                #expect(result.head?.headers == [HTTPField("content-type", "text/event-stream"), HTTPField("x-a", "1"), HTTPField("set-cookie", "s=1; Secure")])
                #expect(result.body == "data: a\n\ndata: b\n\n", "pieces of \(size)")
            }
        }
    }

    @Test func withoutAPreludeEveryByteIsTheBodyOfA200() throws {
        let cases: [(bytes: String, contentType: String?, type: String)] = [
            ("plain text, streamed", nil, "application/octet-stream"),
            (#"{"a":1}"# + "\n" + #"{"a":2}"# + "\n", "application/x-ndjson", "application/x-ndjson"),  // JSON lines: no NULs
            (#"{"a":1}"#, nil, "application/octet-stream"),  // one JSON object and the end
            (#"{"a":1}"# + "\0\0\0x", nil, "application/octet-stream"),  // fewer than 8 NULs
            ("[1,2,3]", "application/vnd.amazon.eventstream", "application/octet-stream"),  // the envelope's type is not the body's
            ("", nil, "application/octet-stream"),
        ]
        for test in cases {
            for size in [1, 3, 1000] {
                let result = try Self.run(Array(test.bytes.utf8), pieces: size, contentType: test.contentType)
                #expect(result.heads == 1 && result.head?.status == 200)
                #expect(result.head?.headers == [HTTPField("content-type", test.type)], "\(test.bytes.debugDescription)")
                #expect(result.body == test.bytes, "\(test.bytes.debugDescription) in pieces of \(size)")
            }
        }
    }

    @Test func aPreludeWithABraceInAStringIsReadWhole() throws {
        let prelude = #"{"statusCode":200,"headers":{"x-b":"}\"{"}}"#
        let bytes = Array(prelude.utf8) + [UInt8](repeating: 0, count: 8) + Array("body".utf8)
        let result = try Self.run(bytes, pieces: 2)
        #expect(result.head?.headers.first { $0.name == "x-b" }?.value == #"}"{"#)
        #expect(result.body == "body")
    }

    @Test func onceTheHeadIsOutChunksPassThroughUnheld() throws {
        var splitter = StreamingResponseSplitter(contentType: nil)
        #expect(try splitter.append(ByteBuffer(string: "first")).count == 2)
        #expect(try splitter.append(ByteBuffer(string: "second")) == [.body(ByteBuffer(string: "second"))])
        #expect(try splitter.append(ByteBuffer()) == [])
        #expect(try splitter.finish() == [])
    }

    static let integration = "application/vnd.awslambda.http-integration-response"
    static let nuls = [UInt8](repeating: 0, count: 8)

    /// The error `bytes` make, fed whole then finished; and the same error on every later call.
    static func failure(_ bytes: [UInt8], contentType: String? = integration, maximum: Int = 65_536) -> PayloadError? {
        var splitter = StreamingResponseSplitter(contentType: contentType, maximumPreludeBytes: maximum)
        do {
            _ = try splitter.append(ByteBuffer(bytes: bytes))
            _ = try splitter.finish()
            return nil
        } catch {
            #expect(throws: error) { try splitter.append(ByteBuffer(string: "more")) }
            #expect(throws: error) { try splitter.finish() }
            return error
        }
    }

    @Test func aBadPreludeWhereTheContentTypeSaysThereIsOneIsAnInvalidFunctionResponse() {
        #expect(Self.failure(Array(#"{"statusCode":101}"#.utf8) + Self.nuls)?.code == .invalidFunctionResponse, "a 1xx is never a final answer")
        #expect(Self.failure(Array(#"{"statusCode":"x"}"#.utf8) + Self.nuls) != nil)
        #expect(Self.failure(Array(#"{"headers":[1]}"#.utf8) + Self.nuls) != nil)
        #expect(Self.failure(Array("not json".utf8) + Self.nuls)?.message.contains("not JSON") == true)
        #expect(Self.failure(Array(#"{"statusCode":200}"#.utf8))?.message.contains("ended inside its prelude") == true)
        #expect(Self.failure(Array(repeating: UInt8(ascii: " "), count: 100), maximum: 50)?.message.contains("over 50 bytes") == true)
        // Over the limit even when its NULs come in the same piece.
        #expect(Self.failure(Array((#"{"headers":{"a":""# + String(repeating: "x", count: 100) + #""}}"#).utf8) + Self.nuls, maximum: 50) != nil)
    }

    @Test func withoutAContentTypeAnObjectThatIsNoPreludeIsTheBody() throws {
        for bytes in [
            Array(#"{"statusCode":101}"#.utf8) + Self.nuls + Array("x".utf8),  // not a final status
            Array("{]".utf8) + Self.nuls,  // not JSON
            Array((#"{"a":""# + String(repeating: "x", count: 100) + #""}"#).utf8) + Self.nuls,  // over the limit
        ] {
            var splitter = StreamingResponseSplitter(contentType: nil, maximumPreludeBytes: 50)
            let events = try splitter.append(ByteBuffer(bytes: bytes)) + splitter.finish()
            #expect(events == [.head(LambdaHTTPResponse(status: 200, headers: [HTTPField("content-type", "application/octet-stream")])), .body(ByteBuffer(bytes: bytes))])
        }
    }

    @Test func aStreamThatNamesItsOwnTypeIsNeverHeld() throws {
        var splitter = StreamingResponseSplitter(contentType: "text/event-stream")
        #expect(try splitter.append(ByteBuffer(string: "{")) == [.head(LambdaHTTPResponse(status: 200, headers: [HTTPField("content-type", "text/event-stream")])), .body(ByteBuffer(string: "{"))])
        var empty = StreamingResponseSplitter(contentType: "application/json")
        #expect(try empty.finish() == [.head(LambdaHTTPResponse(status: 200, headers: [HTTPField("content-type", "application/json")]))])
    }

    @Test func anEscapedBackslashEndsItsString() throws {
        let prelude = #"{"headers":{"x-c":"a\\"},"statusCode":202}"#
        let result = try Self.run(Array(prelude.utf8) + Self.nuls + Array("z".utf8), pieces: 1)
        #expect(result.head?.status == 202 && result.head?.headers.first { $0.name == "x-c" }?.value == #"a\"#)
        #expect(result.body == "z")
    }
}

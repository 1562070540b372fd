import LambdaPayload
import NIOCore
import NIOHTTP1
import Testing

@testable import GatewayCore

@Suite("HTTP/1.1 answer encoding")
struct HTTP1ResponseEncoderTests {
    func text(_ status: Int, body: String = "", bodyless: Bool = false, close: Bool = false) -> String {
        let response = LambdaHTTPResponse(status: status, headers: [HTTPField("x-a", "1")], body: ByteBuffer(string: body))
        let (bytes, rest) = HTTP1ResponseEncoder.encode(response, version: .http1_1, bodyless: bodyless, close: close, allocator: ByteBufferAllocator())
        return String(buffer: bytes) + (rest.map { String(buffer: $0) } ?? "")
    }

    @Test func framingFollowsRFC9110() {
        #expect(text(200, body: "ok") == "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\n\r\nok")
        #expect(text(204) == "HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n")
        // A 304's content-length could only be that of a 200 the gateway never saw.
        #expect(text(304) == "HTTP/1.1 304 Not Modified\r\nx-a: 1\r\n\r\n")
        // HEAD: the length of what GET would send, no body.
        #expect(text(200, body: "ok", bodyless: true, close: true) == "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n")
    }

    /// The head written in one reservation is the head written piece by piece: every status
    /// line (known and unknown codes), well-formed and dropped fields, framing, versions, close.
    @Test func theHeadIsWhatItsPiecesSay() {
        let fieldSets: [[HTTPField]] = [
            [], [HTTPField("x-a", "1")], [HTTPField("content-type", "application/json"), HTTPField("set-cookie", "a=b; Path=/"), HTTPField("x-empty", "")],
            [HTTPField("x-good", "1"), HTTPField("bad name", "2"), HTTPField("x-split", "a\r\nb"), HTTPField("x-last", "3")],
        ]
        for status in [100, 200, 201, 204, 299, 304, 404, 418, 502, 599, 999] {
            for fields in fieldSets {
                for body in ["", "ok", String(repeating: "z", count: 1234)] {
                    for (version, close, bodyless, streamed) in [
                        (HTTPVersion.http1_1, false, false, false), (.http1_1, true, false, false), (.http1_0, false, true, false), (.http1_0, true, false, true), (.http1_1, false, false, true),
                    ] {
                        let response = LambdaHTTPResponse(status: status, headers: fields, body: ByteBuffer(string: streamed ? "" : body))
                        let (bytes, rest) = HTTP1ResponseEncoder.encode(response, version: version, bodyless: bodyless, close: close, streamed: streamed, allocator: ByteBufferAllocator())
                        var expected = "HTTP/1.\(version.minor) \(status) \(HTTPResponseStatus(statusCode: status).reasonPhrase)\r\n"
                        for field in fields where field.isWellFormed { expected += "\(field.name): \(field.value)\r\n" }
                        if streamed {
                            if version != .http1_0 { expected += "transfer-encoding: chunked\r\n" }
                        } else if status >= 200 && status != 204 && status != 304 {
                            expected += "content-length: \(body.utf8.count)\r\n"
                        }
                        if close { expected += "connection: close\r\n" } else if version == .http1_0 { expected += "connection: keep-alive\r\n" }
                        expected += "\r\n"
                        if !bodyless && !streamed { expected += body }
                        #expect(String(buffer: bytes) + (rest.map { String(buffer: $0) } ?? "") == expected, "\(status) \(fields) \(version) close \(close)")
                    }
                }
            }
        }
    }

    @Test func aLargeBodyIsWrittenAfterTheHeadUncopied() {
        let large = ByteBuffer(repeating: UInt8(ascii: "b"), count: HTTP1ResponseEncoder.coalescedBodyLimit + 1)
        let response = LambdaHTTPResponse(status: 200, headers: [], body: large)
        let (head, rest) = HTTP1ResponseEncoder.encode(response, version: .http1_1, bodyless: false, close: false, allocator: ByteBufferAllocator())
        #expect(String(buffer: head) == "HTTP/1.1 200 OK\r\ncontent-length: \(large.readableBytes)\r\n\r\n")
        #expect(rest == large)
        let small = LambdaHTTPResponse(status: 200, headers: [], body: ByteBuffer(string: "x"))
        #expect(HTTP1ResponseEncoder.encode(small, version: .http1_1, bodyless: false, close: false, allocator: ByteBufferAllocator()).1 == nil)
    }
}

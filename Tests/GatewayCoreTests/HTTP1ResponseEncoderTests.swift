import LambdaPayload
import NIOCore
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

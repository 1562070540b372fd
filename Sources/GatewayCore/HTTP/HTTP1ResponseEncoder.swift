import LambdaPayload
import NIOCore
import NIOHTTP1

/// An answer as HTTP/1.x bytes: status line, headers, `content-length`, body.
enum HTTP1ResponseEncoder {
    /// A body up to this size is copied behind the head, so the answer is one buffer and one TLS
    /// record; a larger one (up to Lambda's 6 MB) is written as it is, after the head.
    static let coalescedBodyLimit = 16 * 1024

    /// The bytes to write, in order: the head (with the body when it is small), then the body when
    /// it is not.
    /// `streamed`: the head of a streamed answer, whose body follows in pieces: chunked on
    /// HTTP/1.1, ended by the close on HTTP/1.0 (`close` must be set then); `response.body` is empty.
    static func encode(_ response: LambdaHTTPResponse, version: HTTPVersion, bodyless: Bool, close: Bool, streamed: Bool = false, allocator: ByteBufferAllocator) -> (ByteBuffer, ByteBuffer?) {
        let status = HTTPResponseStatus(statusCode: response.status)
        let sendsBody = !bodyless && response.body.readableBytes > 0
        let coalesced = sendsBody && response.body.readableBytes <= coalescedBodyLimit
        var size = 64 + (coalesced ? response.body.readableBytes : 0)
        for field in response.headers { size += field.name.utf8.count + field.value.utf8.count + 4 }
        var buffer = allocator.buffer(capacity: size)
        writeStatusLine(version: version, status: status, into: &buffer)
        // A field that could break the framing is dropped, as NIO's response-header validator
        // would have refused it (the payload codecs already drop such names).
        for field in response.headers where field.isWellFormed {
            buffer.writeString(field.name)
            buffer.writeStaticString(": ")
            buffer.writeString(field.value)
            buffer.writeStaticString("\r\n")
        }
        // 1xx and 204 carry no content-length, and a 304's could only be the length of a 200 the
        // gateway never saw (RFC 9110 §8.6); every other answer is framed by it.
        if streamed {
            if version != .http1_0 { buffer.writeStaticString("transfer-encoding: chunked\r\n") }
        } else if response.status >= 200 && response.status != 204 && response.status != 304 {
            buffer.writeStaticString("content-length: ")
            buffer.writeString(String(response.body.readableBytes))
            buffer.writeStaticString("\r\n")
        }
        if close {
            buffer.writeStaticString("connection: close\r\n")
        } else if version == .http1_0 {
            buffer.writeStaticString("connection: keep-alive\r\n")
        }
        buffer.writeStaticString("\r\n")
        guard sendsBody else { return (buffer, nil) }
        guard coalesced else { return (buffer, response.body) }
        var body = response.body
        buffer.writeBuffer(&body)
        return (buffer, nil)
    }

    /// One piece of a streamed body: a chunk (`size CRLF bytes CRLF`), or on HTTP/1.0 the bytes
    /// as they are. An empty piece is nothing (an empty chunk would end the body).
    static func streamPiece(_ piece: ByteBuffer, chunked: Bool, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard piece.readableBytes > 0 else { return nil }
        guard chunked else { return piece }
        var piece = piece
        var buffer = allocator.buffer(capacity: piece.readableBytes + 20)
        buffer.writeString(String(piece.readableBytes, radix: 16))
        buffer.writeStaticString("\r\n")
        buffer.writeBuffer(&piece)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The last chunk of a streamed body (no trailers).
    static func writeLastChunk(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("0\r\n\r\n")
    }

    /// `100 Continue`, the go-ahead for a body (docs/ARCHITECTURE.md, HTTP/1.x and HTTP/2).
    static func writeContinue(version: HTTPVersion, into buffer: inout ByteBuffer) {
        writeStatusLine(version: version, status: .continue, into: &buffer)
        buffer.writeStaticString("\r\n")
    }

    /// The answer to a request that cannot be parsed: no body, and the connection closes.
    static func writeBare(status code: Int, into buffer: inout ByteBuffer) {
        writeStatusLine(version: .http1_1, status: HTTPResponseStatus(statusCode: code), into: &buffer)
        buffer.writeStaticString("content-length: 0\r\nconnection: close\r\n\r\n")
    }

    private static func writeStatusLine(version: HTTPVersion, status: HTTPResponseStatus, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString(String(status.code))
        buffer.writeStaticString(" ")
        buffer.writeString(status.reasonPhrase)
        buffer.writeStaticString("\r\n")
    }
}

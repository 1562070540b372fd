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
        // A field that could break the framing is dropped, as NIO's response-header validator
        // would have refused it (the payload codecs already drop such names).
        var fields = response.headers
        if !fields.allSatisfy(\.isWellFormed) { fields.removeAll { !$0.isWellFormed } }
        // 1xx and 204 carry no content-length, and a 304's could only be the length of a 200 the
        // gateway never saw (RFC 9110 §8.6); every other answer is framed by it.
        let length: Int? = !streamed && response.status >= 200 && response.status != 204 && response.status != 304 ? response.body.readableBytes : nil
        let chunked = streamed && version != .http1_0
        let connection: StaticString? = close ? "connection: close\r\n" : (version == .http1_0 ? "connection: keep-alive\r\n" : nil)

        // The head is measured, then written in one reservation: a buffer call per piece cost
        // some 150 to 250 instructions each, a dozen pieces per answer.
        var size = statusLineLength(status) + 2
        for index in fields.indices { size += fields[index].name.utf8.count + fields[index].value.utf8.count + 4 }
        if let length { size += Self.contentLength.utf8CodeUnitCount + decimalDigits(length) + 2 }
        if chunked { size += Self.chunkedLine.utf8CodeUnitCount }
        if let connection { size += connection.utf8CodeUnitCount }
        var buffer = allocator.buffer(capacity: size + (coalesced ? response.body.readableBytes : 0))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { output in
            var writer = HeadWriter(output)
            writer.writeStatusLine(version: version, status: status)
            for index in fields.indices {
                writer.write(string: fields[index].name)
                writer.write(": ")
                writer.write(string: fields[index].value)
                writer.write("\r\n")
            }
            if let length {
                writer.write(Self.contentLength)
                writer.write(decimal: length)
                writer.write("\r\n")
            }
            if chunked { writer.write(Self.chunkedLine) }
            if let connection { writer.write(connection) }
            writer.write("\r\n")
            return writer.count
        }
        guard sendsBody else { return (buffer, nil) }
        guard coalesced else { return (buffer, response.body) }
        var body = response.body
        buffer.writeBuffer(&body)
        return (buffer, nil)
    }

    private static let contentLength: StaticString = "content-length: "
    private static let chunkedLine: StaticString = "transfer-encoding: chunked\r\n"

    /// How many decimal digits `value` (not negative) takes.
    static func decimalDigits(_ value: Int) -> Int {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        return digits
    }

    /// Writes into a measured head, piece after piece.
    private struct HeadWriter {
        let output: UnsafeMutableRawBufferPointer
        var count = 0

        init(_ output: UnsafeMutableRawBufferPointer) {
            self.output = output
        }

        mutating func write(_ text: StaticString) {
            (output.baseAddress! + count).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
            count += text.utf8CodeUnitCount
        }

        /// The text's bytes borrowed where they are (`withUTF8Bytes`).
        mutating func write(string text: String) {
            text.withUTF8Bytes { write(bytes: $0) }
        }

        mutating func write(bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress else { return }
            (output.baseAddress! + count).copyMemory(from: base, byteCount: bytes.count)
            count += bytes.count
        }

        mutating func writeStatusLine(version: HTTPVersion, status: HTTPResponseStatus) {
            write(version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            write(decimal: Int(status.code))
            write(" ")
            write(string: status.reasonPhrase)
            write("\r\n")
        }

        mutating func write(decimal value: Int) {
            let digits = HTTP1ResponseEncoder.decimalDigits(value)
            var rest = value
            for position in stride(from: count + digits - 1, through: count, by: -1) {
                output[position] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            count += digits
        }
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
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: statusLineLength(status)) { output in
            var writer = HeadWriter(output)
            writer.writeStatusLine(version: version, status: status)
            return writer.count
        }
    }

    /// `HTTP/1.x code reason` and its line break.
    private static func statusLineLength(_ status: HTTPResponseStatus) -> Int {
        9 + decimalDigits(Int(status.code)) + 1 + status.reasonPhrase.utf8.count + 2
    }
}

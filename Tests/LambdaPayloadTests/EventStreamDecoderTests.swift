import Foundation
import LambdaPayload
import NIOCore
import TestSupport
import Testing

/// AWS's event-stream framing, read from frames an independent encoder made (Python, each checked
/// by botocore's own decoder), in any pieces; and everything that must stop a stream.
@Suite("Event-stream decoder")
struct EventStreamDecoderTests {
    /// The frames of `messages` (name, type, value triples; payload text), from
    /// `scripts/eventstream_frames.py`.
    static func frames(_ messages: [(headers: [(String, String, Any)], payload: [UInt8])]) async throws -> [UInt8] {
        let json = messages.map { message in
            ["headers": message.headers.map { [$0.0, $0.1, $0.2] }, "payload": Data(message.payload).base64EncodedString()] as [String: Any]
        }
        let input = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
        let script = MotoServer.packageRoot.appendingPathComponent("scripts/eventstream_frames.py").path
        let output = try await ChildProcess.run(["python3", script], input: input)
        #expect(output.status == 0, "\(output.stderr)")
        return Array(try #require(Data(base64Encoded: output.stdout)))
    }

    static var chunk: (headers: [(String, String, Any)], payload: [UInt8]) {
        (
            [(":event-type", "string", "PayloadChunk"), (":content-type", "string", "application/octet-stream"), (":message-type", "string", "event")],
            Array("data: first token\n\n".utf8)
        )
    }
    static var complete: (headers: [(String, String, Any)], payload: [UInt8]) {
        (
            [(":event-type", "string", "InvokeComplete"), (":message-type", "string", "event")],
            Array(#"{"ErrorCode":"","ErrorDetails":"","LogResult":""}"#.utf8)
        )
    }

    static func decodeAll(_ bytes: [UInt8], pieces: Int) throws -> [EventStreamMessage] {
        var decoder = EventStreamDecoder()
        var messages: [EventStreamMessage] = []
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + pieces)
            decoder.append(ByteBuffer(bytes: bytes[start..<end]))
            while let message = try decoder.next() { messages.append(message) }
            start = end
        }
        #expect(decoder.pendingBytes == 0)
        return messages
    }

    @Test func aCRC32IsZlibs() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum(Array("6789".utf8), continuing: CRC32.checksum(Array("12345".utf8))) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
    }

    /// Eight bytes a step gives what one bit at a time gives, at every length and alignment, and
    /// continues across any cut; zlib's (through Python) for a long input.
    @Test func theEightByteStepsGiveTheBitwiseChecksum() async throws {
        func bitwise(_ bytes: some Sequence<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            return ~crc
        }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<4099).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099] {
            for offset in [0, 1, 3] where offset <= length {
                let slice = bytes[offset..<length]
                #expect(CRC32.checksum(Array(slice)) == bitwise(slice), "length \(length) offset \(offset)")
            }
        }
        let buffer = ByteBuffer(bytes: bytes)
        for cut in [0, 5, 8, 2049, 4099] {
            let first = CRC32.checksum(buffer.getSlice(at: 0, length: cut)!)
            #expect(CRC32.checksum(buffer.getSlice(at: cut, length: bytes.count - cut)!, continuing: first) == bitwise(bytes))
        }
        let long = String(repeating: "streamed answer ", count: 8192)
        let zlib = try await ChildProcess.run(["python3", "-c", "import sys, zlib; print(zlib.crc32(sys.stdin.buffer.read()))"], input: long)
        #expect(UInt32(zlib.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == CRC32.checksum(ByteBuffer(string: long)))
    }

    @Test func framesFromAnIndependentEncoderDecodeWhateverThePieces() async throws {
        let every: (headers: [(String, String, Any)], payload: [UInt8]) = (
            [
                ("true", "bool", true), ("false", "bool", false), ("byte", "byte", -2), ("short", "short", -300), ("integer", "integer", 70_000),
                ("long", "long", 1 << 40), ("bytes", "bytes", Data([0, 1, 255]).base64EncodedString()), ("string", "string", "é ✓"),
                ("timestamp", "timestamp", 1_700_000_000_123), ("uuid", "uuid", "0123456789abcdef0123456789abcdef"),
            ],
            []
        )
        let bytes = try await Self.frames([Self.chunk, every, Self.complete, ([], [])])
        for pieces in [bytes.count, 1, 7, 16, 100] {
            let messages = try Self.decodeAll(bytes, pieces: pieces)
            try #require(messages.count == 4, "pieces of \(pieces)")
            #expect(messages[0].header(":event-type") == .string("PayloadChunk"))
            #expect(messages[0].payload == ByteBuffer(string: "data: first token\n\n"))
            #expect(messages[1].headers.map(\.name) == ["true", "false", "byte", "short", "integer", "long", "bytes", "string", "timestamp", "uuid"])
            #expect(
                messages[1].headers.map(\.value) == [
                    .bool(true), .bool(false), .byte(-2), .short(-300), .integer(70_000), .long(1 << 40), .bytes([0, 1, 255]), .string("é ✓"),
                    .timestamp(1_700_000_000_123), .uuid([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
                ])
            #expect(messages[1].payload.readableBytes == 0)
            #expect(messages[2].header(":event-type") == .string("InvokeComplete") && String(buffer: messages[2].payload).hasPrefix(#"{"ErrorCode""#))
            #expect(messages[3].headers.isEmpty && messages[3].payload.readableBytes == 0)
        }
    }

    @Test func anIncompleteMessageWaitsAndStaysPending() async throws {
        let bytes = try await Self.frames([Self.chunk])
        var decoder = EventStreamDecoder()
        decoder.append(ByteBuffer(bytes: bytes.dropLast()))
        #expect(try decoder.next() == nil)
        #expect(decoder.pendingBytes == bytes.count - 1, "a stream that ends here is incomplete")
        decoder.append(ByteBuffer(bytes: bytes.suffix(1)))
        #expect(try decoder.next()?.payload == ByteBuffer(bytes: Self.chunk.payload))
    }

    static func expectFailure(_ bytes: [UInt8], _ kind: EventStreamError.Kind, maximum: Int = 1 << 20) {
        var decoder = EventStreamDecoder(maximumMessageBytes: maximum)
        decoder.append(ByteBuffer(bytes: bytes))
        #expect(throws: EventStreamError(kind: kind)) { try decoder.next() }
        // Broken for good: the same error, never a message after it, and nothing more held.
        decoder.append(ByteBuffer(bytes: bytes))
        #expect(decoder.pendingBytes == 0)
        #expect(throws: EventStreamError(kind: kind)) { try decoder.next() }
    }

    @Test func aCorruptByteAnywhereStopsTheStream() async throws {
        let bytes = try await Self.frames([Self.chunk])
        for index in [0, 3, 5, 9] {  // the lengths, the prelude's checksum
            var corrupt = bytes
            corrupt[index] ^= 0x01
            Self.expectFailure(corrupt, .preludeChecksum)
        }
        for index in [12, 20, bytes.count - 10, bytes.count - 1] {  // a header, the payload, the message checksum
            var corrupt = bytes
            corrupt[index] ^= 0x80
            Self.expectFailure(corrupt, .messageChecksum)
        }
    }

    /// A message of these raw parts, with correct checksums (`CRC32` is checked against zlib above).
    static func message(total: UInt32? = nil, headersLength: UInt32? = nil, headers: [UInt8], payload: [UInt8] = []) -> [UInt8] {
        var prelude: [UInt8] = []
        for value in [total ?? UInt32(16 + headers.count + payload.count), headersLength ?? UInt32(headers.count)] {
            prelude += withUnsafeBytes(of: value.bigEndian, Array.init)
        }
        prelude += withUnsafeBytes(of: CRC32.checksum(prelude).bigEndian, Array.init)
        let body = prelude + headers + payload
        return body + withUnsafeBytes(of: CRC32.checksum(body).bigEndian, Array.init)
    }

    @Test func lengthsThatMakeNoMessageAndMessagesOverTheLimitAreRefusedFromThePrelude() {
        Self.expectFailure(Array(Self.message(total: 15, headers: []).prefix(12)), .lengths)
        Self.expectFailure(Array(Self.message(headersLength: 5, headers: []).prefix(12)), .lengths)
        // Headers over 128 KiB, as AWS's own readers refuse them, within a message under the limit.
        Self.expectFailure(Array(Self.message(total: 200_000, headersLength: 128 * 1024 + 1, headers: []).prefix(12)), .lengths)
        // Only the prelude has arrived: a message over the limit is refused before its body.
        Self.expectFailure(Array(Self.message(headers: [], payload: Array(repeating: 7, count: 100)).prefix(12)), .messageTooLarge(limit: 64), maximum: 64)
    }

    @Test func malformedHeadersStopTheStream() {
        let string: [UInt8] = [1, UInt8(ascii: "a"), 7, 0, 1, UInt8(ascii: "x")]
        Self.expectFailure(Self.message(headers: [1, UInt8(ascii: "a"), 10]), .unknownHeaderType(10))
        Self.expectFailure(Self.message(headers: string + string), .duplicateHeader("a"))
        Self.expectFailure(Self.message(headers: [0, 0]), .malformedHeader)  // an empty name
        Self.expectFailure(Self.message(headers: [1, UInt8(ascii: "a"), 7, 0, 9, UInt8(ascii: "x")]), .malformedHeader)  // a string past the headers
        Self.expectFailure(Self.message(headers: [1, UInt8(ascii: "a"), 5, 0, 0]), .malformedHeader)  // a long cut short
        Self.expectFailure(Self.message(headers: [5, UInt8(ascii: "a")]), .malformedHeader)  // a name past the headers
    }
}

import NIOCore

/// One message of AWS's event-stream framing (`application/vnd.amazon.eventstream`), the body of
/// an `InvokeWithResponseStream` answer: its headers (`:event-type` `PayloadChunk` or
/// `InvokeComplete`, `:message-type`, ...) and its payload.
public struct EventStreamMessage: Sendable, Equatable {
    public var headers: [(name: String, value: EventStreamHeaderValue)]
    public var payload: ByteBuffer

    public init(headers: [(name: String, value: EventStreamHeaderValue)], payload: ByteBuffer) {
        self.headers = headers
        self.payload = payload
    }

    /// The first header called `name`.
    public func header(_ name: String) -> EventStreamHeaderValue? {
        headers.first { $0.name == name }?.value
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.payload == rhs.payload && lhs.headers.count == rhs.headers.count && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// A header value, by the framing's type byte.
public enum EventStreamHeaderValue: Sendable, Hashable {
    case bool(Bool)
    case byte(Int8)
    case short(Int16)
    case integer(Int32)
    case long(Int64)
    case bytes([UInt8])
    case string(String)
    /// Milliseconds since the epoch.
    case timestamp(Int64)
    case uuid([UInt8])
}

/// Why an event stream cannot be read on: after one, the stream is broken and the answer must not
/// look complete.
public struct EventStreamError: Error, Hashable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        case preludeChecksum
        case messageChecksum
        /// The prelude's total length is under the smallest message (16 bytes), or its headers
        /// length does not fit in it or is over 128 KiB.
        case lengths
        case messageTooLarge(limit: Int)
        case malformedHeader
        case unknownHeaderType(UInt8)
        case duplicateHeader(String)
    }

    public var kind: Kind

    public init(kind: Kind) {
        self.kind = kind
    }

    public var description: String {
        switch kind {
        case .preludeChecksum: "event stream: prelude checksum mismatch"
        case .messageChecksum: "event stream: message checksum mismatch"
        case .lengths: "event stream: the prelude's lengths do not make a message"
        case .messageTooLarge(let limit): "event stream: a message over \(limit) bytes"
        case .malformedHeader: "event stream: a header runs past the headers"
        case .unknownHeaderType(let type): "event stream: unknown header type \(type)"
        case .duplicateHeader(let name): "event stream: header \(name) twice"
        }
    }
}

/// Reads event-stream messages from bytes as they arrive, in any pieces: total length (u32 BE),
/// headers length (u32 BE), prelude CRC-32, headers, payload, message CRC-32 (of every byte
/// before it). Each header: name length (u8), name, type (u8), value (booleans have none; byte,
/// short, integer, long and timestamp are big-endian; byte arrays and strings have a u16 BE
/// length; a UUID is 16 bytes).
///
/// A message is checked whole before it is handed out: both checksums, the lengths, and a size
/// limit checked from the prelude, so a reader that drains `next()` after each `append` holds at
/// most `maximumMessageBytes` plus one read. Headers take at most 128 KiB, as in AWS's own readers.
public struct EventStreamDecoder: Sendable {
    /// The smallest message: a prelude (12 bytes) and a message CRC, no header, no payload.
    static let minimumMessageBytes = 16
    static let maximumHeadersBytes = 128 * 1024
    public let maximumMessageBytes: Int
    private var buffer = ByteBuffer()
    private var failure: EventStreamError?

    /// `maximumMessageBytes`: AWS's own readers allow 128 KiB of headers and 24 MiB of payload;
    /// a Lambda stream's chunks are far smaller, and the default is 1 MiB.
    public init(maximumMessageBytes: Int = 1 << 20) {
        self.maximumMessageBytes = maximumMessageBytes
    }

    /// Bytes that arrived (dropped once the stream is broken).
    public mutating func append(_ bytes: ByteBuffer) {
        guard failure == nil else { return }
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// The bytes not yet made into a message (a stream that ends with some is incomplete).
    public var pendingBytes: Int { buffer.readableBytes }

    /// The next whole message, or nil until more bytes arrive. Once it throws, it throws the
    /// same error again.
    public mutating func next() throws(EventStreamError) -> EventStreamMessage? {
        if let failure { throw failure }
        do {
            return try decode()
        } catch {
            failure = error
            buffer.clear()
            throw error
        }
    }

    private mutating func decode() throws(EventStreamError) -> EventStreamMessage? {
        guard buffer.readableBytes >= 12,
            let total = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
            let headersLength = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self),
            let preludeCRC = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt32.self)
        else { return nil }
        let prelude = buffer.readableBytesView.prefix(8)
        guard CRC32.checksum(prelude) == preludeCRC else { throw EventStreamError(kind: .preludeChecksum) }
        guard Int(total) <= maximumMessageBytes else { throw EventStreamError(kind: .messageTooLarge(limit: maximumMessageBytes)) }
        guard Int(total) >= Self.minimumMessageBytes, Int(headersLength) <= Int(total) - Self.minimumMessageBytes, Int(headersLength) <= Self.maximumHeadersBytes else {
            throw EventStreamError(kind: .lengths)
        }
        guard buffer.readableBytes >= Int(total) else { return nil }
        let start = buffer.readerIndex
        let messageCRC = buffer.getInteger(at: start + Int(total) - 4, as: UInt32.self)!
        let computed = buffer.withUnsafeReadableBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[8..<(Int(total) - 4)]), continuing: preludeCRC) }
        guard computed == messageCRC else {
            throw EventStreamError(kind: .messageChecksum)
        }
        let decodedHeaders = try Self.headers(buffer.getSlice(at: start + 12, length: Int(headersLength))!)
        // The payload in a buffer of its own: a slice would keep this whole buffer alive (and make
        // the next append copy it) for as long as the piece waits to be written.
        let payloadLength = Int(total) - 16 - Int(headersLength)
        var payload = ByteBuffer()
        payload.reserveCapacity(payloadLength)
        payload.writeImmutableBuffer(buffer.getSlice(at: start + 12 + Int(headersLength), length: payloadLength)!)
        buffer.moveReaderIndex(forwardBy: Int(total))
        // What was read is dropped now and then, so a long stream does not grow the buffer.
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > 64 * 1024 {
            buffer.discardReadBytes()
        }
        return EventStreamMessage(headers: decodedHeaders, payload: payload)
    }

    private static func headers(_ bytes: ByteBuffer) throws(EventStreamError) -> [(name: String, value: EventStreamHeaderValue)] {
        var bytes = bytes
        var headers: [(name: String, value: EventStreamHeaderValue)] = []
        headers.reserveCapacity(4)
        // Duplicates found by a scan while there are few (Lambda's messages have three), by a set
        // beyond, so that a message of thousands of headers is not quadratic.
        var names: Set<String>?
        while bytes.readableBytes > 0 {
            guard let nameLength = bytes.readInteger(as: UInt8.self), nameLength > 0, let name = bytes.readString(length: Int(nameLength)),
                let type = bytes.readInteger(as: UInt8.self)
            else { throw EventStreamError(kind: .malformedHeader) }
            let value: EventStreamHeaderValue
            switch type {
            case 0: value = .bool(true)
            case 1: value = .bool(false)
            case 2: value = try .byte(read(&bytes, Int8.self))
            case 3: value = try .short(read(&bytes, Int16.self))
            case 4: value = try .integer(read(&bytes, Int32.self))
            case 5: value = try .long(read(&bytes, Int64.self))
            case 6, 7:
                let length = try read(&bytes, UInt16.self)
                guard let data = bytes.readBytes(length: Int(length)) else { throw EventStreamError(kind: .malformedHeader) }
                value = type == 6 ? .bytes(data) : .string(String(decoding: data, as: UTF8.self))
            case 8: value = try .timestamp(read(&bytes, Int64.self))
            case 9:
                guard let data = bytes.readBytes(length: 16) else { throw EventStreamError(kind: .malformedHeader) }
                value = .uuid(data)
            default: throw EventStreamError(kind: .unknownHeaderType(type))
            }
            if headers.count < 8 {
                guard !headers.contains(where: { $0.name == name }) else { throw EventStreamError(kind: .duplicateHeader(name)) }
            } else {
                if names == nil { names = Set(headers.map(\.name)) }
                guard names!.insert(name).inserted else { throw EventStreamError(kind: .duplicateHeader(name)) }
            }
            headers.append((name, value))
        }
        return headers
    }

    private static func read<Integer: FixedWidthInteger>(_ bytes: inout ByteBuffer, _ type: Integer.Type) throws(EventStreamError) -> Integer {
        guard let value = bytes.readInteger(as: Integer.self) else { throw EventStreamError(kind: .malformedHeader) }
        return value
    }
}

import LambdaPayload
import NIOCore

/// AWS's event-stream framing, written: what Lambda's `InvokeWithResponseStream` sends, for dev
/// mode's endpoint (and the tests' Lambda). Each message: total length and headers length (u32
/// big-endian), the CRC-32 of those 8 bytes, the headers, the payload, the CRC-32 of everything
/// before it. Only string headers (type 7), which is all Lambda's events use.
public enum EventStreamEncoder {
    public static func message(headers: [(name: String, value: String)], payload: ByteBuffer) -> ByteBuffer {
        var headerBytes = ByteBuffer()
        for (name, value) in headers {
            headerBytes.writeInteger(UInt8(name.utf8.count))
            headerBytes.writeString(name)
            headerBytes.writeInteger(UInt8(7))
            headerBytes.writeInteger(UInt16(value.utf8.count))
            headerBytes.writeString(value)
        }
        let total = 12 + headerBytes.readableBytes + payload.readableBytes + 4
        var out = ByteBuffer()
        out.reserveCapacity(total)
        out.writeInteger(UInt32(total))
        out.writeInteger(UInt32(headerBytes.readableBytes))
        out.writeInteger(CRC32.checksum(out))
        out.writeImmutableBuffer(headerBytes)
        out.writeImmutableBuffer(payload)
        out.writeInteger(CRC32.checksum(out))
        return out
    }

    /// A `PayloadChunk` event: bytes the function wrote.
    public static func payloadChunk(_ bytes: ByteBuffer) -> ByteBuffer {
        message(headers: [(":event-type", "PayloadChunk"), (":content-type", "application/octet-stream"), (":message-type", "event")], payload: bytes)
    }

    /// The `InvokeComplete` event that ends every stream; `errorCode` when the function failed.
    public static func invokeComplete(errorCode: String? = nil, errorDetails: String? = nil) -> ByteBuffer {
        var fields: [JSONMember] = []
        if let errorCode { fields.append(JSONMember("ErrorCode", .string(errorCode))) }
        if let errorDetails { fields.append(JSONMember("ErrorDetails", .string(errorDetails))) }
        return message(headers: [(":event-type", "InvokeComplete"), (":content-type", "application/json"), (":message-type", "event")], payload: ByteBuffer(string: JSONValue.object(fields).jsonText))
    }
}

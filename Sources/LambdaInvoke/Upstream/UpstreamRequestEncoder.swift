import LambdaPayload
import NIOCore
import NIOHTTP1

/// Writes a request as HTTP/1.1 bytes once, when it is made (a retry on a new connection writes
/// the same bytes): `METHOD target HTTP/1.1`, the fields, a blank line, and a body up to 16 KiB
/// behind them in the same buffer (so the same TLS record). It takes the place of NIO's request
/// encoder and header validator, and of a handler that gathered a request's parts.
///
/// The gateway builds every field itself (no client header reaches AWS: docs/DECISIONS.md D2); a field that
/// could still break the framing (CR, LF or NUL) is left out, and AWS then refuses the request
/// rather than reading a second one.
enum UpstreamRequestEncoder {
    /// A body up to this size is copied behind the head: one buffer, one TLS record.
    static let coalescedBodyLimit = 16 * 1024

    static func encode<Name: UpstreamFieldName>(method: HTTPMethod, target: String, fields: [(Name, String)], body: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator())
        -> UpstreamRequest
    {
        if body.readableBytes <= coalescedBodyLimit {
            return UpstreamRequest(bytes: encode(method: method, target: target, fields: fields, body: body, allocator: allocator), largeBody: nil, isHEAD: method == .HEAD)
        }
        // A large payload (up to 6 MB) is not copied: the head, then the body as it is.
        return UpstreamRequest(bytes: encode(method: method, target: target, fields: fields, body: ByteBuffer(), allocator: allocator), largeBody: body, isHEAD: method == .HEAD)
    }

    /// The head is written into one reservation (a `ByteBuffer` call per piece cost some 250
    /// instructions each, 33 pieces per Invoke call), then the body behind it.
    static func encode<Name: UpstreamFieldName>(method: HTTPMethod, target: String, fields: [(Name, String)], body: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        let method = method.rawValue
        var size = method.utf8.count + target.utf8.count + 14
        var safe = fields
        if !fields.allSatisfy({ $0.0.isSafe && HTTPField.hasNoLineBreakOrNUL($0.1) }) {
            safe.removeAll { !$0.0.isSafe || !HTTPField.hasNoLineBreakOrNUL($0.1) }
        }
        for index in safe.indices {
            size += safe[index].0.byteCount + safe[index].1.utf8.count + 4
        }
        var buffer = allocator.buffer(capacity: size + body.readableBytes)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { output in
            var out = 0
            func put(_ bytes: UnsafeRawBufferPointer) {
                UnsafeMutableRawBufferPointer(rebasing: output[out...]).copyMemory(from: bytes)
                out += bytes.count
            }
            // Each text's bytes borrowed where they are (`withUTF8Bytes`).
            func put(_ text: String) {
                text.withUTF8Bytes { put($0) }
            }
            func put(_ first: UInt8, _ second: UInt8) {
                output[out] = first
                output[out + 1] = second
                out += 2
            }
            put(method)
            output[out] = UInt8(ascii: " ")
            out += 1
            put(target)
            put(" HTTP/1.1")
            put(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            for index in safe.indices {
                safe[index].0.withBytes { put($0) }
                put(UInt8(ascii: ":"), UInt8(ascii: " "))
                put(safe[index].1)
                put(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            }
            put(UInt8(ascii: "\r"), UInt8(ascii: "\n"))
            return out
        }
        var body = body
        buffer.writeBuffer(&body)
        return buffer
    }
}

/// A field name the encoder writes: a `String` from elsewhere, checked for CR, LF and NUL, or a
/// literal of the gateway's own (`StaticString`, the Invoke call's names), which needs no check.
protocol UpstreamFieldName {
    var isSafe: Bool { get }
    var byteCount: Int { get }
    func withBytes(_ body: (UnsafeRawBufferPointer) -> Void)
}

extension String: UpstreamFieldName {
    var isSafe: Bool { HTTPField.hasNoLineBreakOrNUL(self) }
    var byteCount: Int { utf8.count }
    func withBytes(_ body: (UnsafeRawBufferPointer) -> Void) {
        withUTF8Bytes(body)
    }
}

extension StaticString: UpstreamFieldName {
    var isSafe: Bool { true }
    var byteCount: Int { utf8CodeUnitCount }
    func withBytes(_ body: (UnsafeRawBufferPointer) -> Void) {
        body(UnsafeRawBufferPointer(start: utf8Start, count: utf8CodeUnitCount))
    }
}

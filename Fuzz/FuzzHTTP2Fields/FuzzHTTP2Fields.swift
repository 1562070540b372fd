// libFuzzer target: an HTTP/2 request's header block, and optionally its trailers, as a client sends
// them. The gateway checks their fields itself (`HTTP2FieldRules`, in
// `HTTP2StreamStateMachine.requestHead`), with NIO's own check turned off; the same blocks go
// through NIO's HTTP/2 server handler with its check on. Both must refuse the same blocks.
//
// Input: fields separated by 0xFE, each `name 0xFD value` (a field without 0xFD has an empty
// value); a 0xFC starts the trailers, which follow a body byte.
import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2

@testable import GatewayCore

let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

func frame(_ type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
    [UInt8(payload.count >> 16 & 0xFF), UInt8(payload.count >> 8 & 0xFF), UInt8(payload.count & 0xFF), type, flags]
        + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
}

/// The fields as a header block, each a literal with its name written out (RFC 7541 §6.2.2), so
/// every name and value is sent as written.
func block(_ fields: [(String, String)]) -> [UInt8] {
    func append(_ bytes: [UInt8], to block: inout [UInt8]) {
        if bytes.count < 127 {
            block.append(UInt8(bytes.count))
        } else {
            block.append(127)
            var rest = bytes.count - 127
            while rest >= 128 {
                block.append(UInt8(rest % 128 + 128))
                rest /= 128
            }
            block.append(UInt8(rest))
        }
        block += bytes
    }
    var block: [UInt8] = []
    for (name, value) in fields {
        block.append(0)
        append(Array(name.utf8), to: &block)
        append(Array(value.utf8), to: &block)
    }
    return block
}

func fields(_ bytes: ArraySlice<UInt8>) -> [(String, String)] {
    bytes.split(separator: 0xFE, omittingEmptySubsequences: false).compactMap { field in
        guard !field.isEmpty else { return nil }
        let parts = field.split(separator: 0xFD, maxSplits: 1, omittingEmptySubsequences: false)
        return (String(decoding: parts[0], as: UTF8.self), parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : "")
    }
}

/// NIO's verdict: its handler hands the request on, or resets stream 1.
func nioAccepts(_ head: [UInt8], trailers: [UInt8]?) -> Bool {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    try! channel.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server))
    try! channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    var bytes = preface + frame(4, flags: 0, stream: 0, []) + frame(4, flags: 1, stream: 0, [])
    bytes += frame(1, flags: 0x4 | (trailers == nil ? 0x1 : 0), stream: 1, head)
    if let trailers { bytes += frame(0, flags: 0, stream: 1, [0x61]) + frame(1, flags: 0x5, stream: 1, trailers) }
    _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
    // NIO's handler flushes what it wrote (a RST_STREAM) as the read completes.
    channel.pipeline.fireChannelReadComplete()
    var written: [UInt8] = []
    while let buffer = try? channel.readOutbound(as: ByteBuffer.self) { written += Array(buffer.readableBytesView) }
    var index = 0
    while written.count - index >= 9 {
        let length = Int(written[index]) << 16 | Int(written[index + 1]) << 8 | Int(written[index + 2])
        if written[index + 3] == 3 && written[index + 8] == 1 { return false }  // RST_STREAM on stream 1
        if written[index + 3] == 7 { return false }  // GOAWAY: the block was not even a request
        index += 9 + length
    }
    var headerBlocks = 0
    while let frame = try? channel.readInbound(as: HTTP2Frame.self) {
        if case .headers = frame.payload { headerBlocks += 1 }
    }
    precondition(headerBlocks == (trailers == nil ? 1 : 2), "NIO neither reset the stream nor passed the request on")
    return true
}

/// The gateway's verdict on the same bytes, decoded by NIO's HPACK decoder as its handler does.
func gatewayAccepts(_ head: [UInt8], trailers: [UInt8]?) -> Bool? {
    var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
    var buffer = ByteBuffer(bytes: head)
    guard let headers = try? decoder.decodeHeaders(from: &buffer) else { return nil }
    do {
        _ = try HTTP2StreamStateMachine.requestHead(headers)
    } catch .malformed {
        return false
    } catch {
        // A missing :authority is the gateway's own rule (a 400), not RFC 9113's.
    }
    if let trailers {
        var buffer = ByteBuffer(bytes: trailers)
        guard let decoded = try? decoder.decodeHeaders(from: &buffer) else { return nil }
        do { try HTTP2FieldRules.check(trailers: decoded) } catch { return false }
    }
    return true
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let parts = bytes.split(separator: 0xFC, maxSplits: 1, omittingEmptySubsequences: false)
    let head = block(fields(parts[0]))
    let trailers = parts.count > 1 ? block(fields(parts[1])) : nil
    // A block NIO's decoder cannot read (over its limits) is no field question.
    guard let gateway = gatewayAccepts(head, trailers: trailers) else { return 0 }
    let nio = nioAccepts(head, trailers: trailers)
    precondition(gateway == nio, "gateway \(gateway ? "accepts" : "refuses"), NIO \(nio ? "accepts" : "refuses"): \(fields(parts[0])) trailers \(parts.count > 1 ? "\(fields(parts[1]))" : "none")")
    return 0
}

@_cdecl("FuzzHTTP2Fields_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}

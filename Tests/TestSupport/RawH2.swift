import NIOCore
import NIOHPACK

/// HTTP/2 frames written byte by byte, as an attacker or a careless client would send them (no
/// client library that refuses to send a malformed request), and read back with NIO's HPACK
/// decoder.
public enum RawH2 {
    public static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    public enum FrameType: UInt8 {
        case data = 0
        case headers = 1
        case rstStream = 3
        case settings = 4
        case ping = 6
        case goAway = 7
        case windowUpdate = 8
        case continuation = 9
    }

    public struct Frame {
        public var type: UInt8
        public var flags: UInt8
        public var stream: UInt32
        public var payload: [UInt8]
    }

    public static func frame(_ type: FrameType, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type.rawValue, flags]
            + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
    }

    /// The client's preface and SETTINGS (each pair: identifier, value), and an ACK of the server's.
    public static func start(settings: [(UInt16, UInt32)] = []) -> [UInt8] {
        var payload: [UInt8] = []
        for (identifier, value) in settings {
            payload += withUnsafeBytes(of: identifier.bigEndian, Array.init) + withUnsafeBytes(of: value.bigEndian, Array.init)
        }
        return preface + frame(.settings, payload) + frame(.settings, flags: 0x1)
    }

    /// A header block: the fields in order, each a literal with its name written out (RFC 7541
    /// §6.2.2, no Huffman coding), so any name or value, however malformed, is sent as written (NIO's
    /// encoder would take a name from its static table, in lower case).
    public static func block(_ fields: [(String, String)]) -> [UInt8] {
        var block: [UInt8] = []
        for (name, value) in fields {
            block.append(0)
            appendString(Array(name.utf8), to: &block)
            appendString(Array(value.utf8), to: &block)
        }
        return block
    }

    /// An HPACK string literal: its length as a 7-bit-prefix integer (RFC 7541 §5.1), then its bytes.
    static func appendString(_ bytes: [UInt8], to block: inout [UInt8]) {
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

    /// A GET (or `method`) for `path` with `authority`, plus `extra` fields.
    public static func request(stream: UInt32, method: String = "GET", path: String, authority: String?, extra: [(String, String)] = [], endStream: Bool = true) -> [UInt8] {
        var fields = [(":method", method), (":scheme", "https"), (":path", path)]
        if let authority { fields.append((":authority", authority)) }
        return frame(.headers, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, block(fields + extra))
    }

    public static func frames(in bytes: [UInt8]) -> [Frame] {
        var frames: [Frame] = []
        var index = 0
        while bytes.count - index >= 9 {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            guard bytes.count - index - 9 >= length else { break }
            let stream = UInt32(bytes[index + 5] & 0x7F) << 24 | UInt32(bytes[index + 6]) << 16 | UInt32(bytes[index + 7]) << 8 | UInt32(bytes[index + 8])
            frames.append(Frame(type: bytes[index + 3], flags: bytes[index + 4], stream: stream, payload: Array(bytes[(index + 9)..<(index + 9 + length)])))
            index += 9 + length
        }
        return frames
    }

    /// Each stream's response: `:status`, the other fields, and the DATA received.
    public struct Response {
        public var status: Int?
        public var fields: [(String, String)] = []
        public var body: [UInt8] = []
        public var ended = false
        public var reset: UInt32?
    }

    public static func responses(in bytes: [UInt8]) -> [UInt32: Response] {
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        var result: [UInt32: Response] = [:]
        for frame in frames(in: bytes) where frame.stream != 0 {
            var response = result[frame.stream] ?? Response()
            switch FrameType(rawValue: frame.type) {
            case .headers?:
                var block = ByteBuffer(bytes: frame.payload)
                if let headers = try? decoder.decodeHeaders(from: &block) {
                    for (name, value, _) in headers {
                        if name == ":status" { response.status = Int(value) } else { response.fields.append((name, value)) }
                    }
                }
                if frame.flags & 0x1 != 0 { response.ended = true }
            case .data?:
                response.body += frame.payload
                if frame.flags & 0x1 != 0 { response.ended = true }
            case .rstStream?:
                response.reset = frame.payload.count == 4 ? UInt32(frame.payload[0]) << 24 | UInt32(frame.payload[1]) << 16 | UInt32(frame.payload[2]) << 8 | UInt32(frame.payload[3]) : 0
            default:
                break
            }
            result[frame.stream] = response
        }
        return result
    }

    /// The error codes of the GOAWAY frames received.
    public static func goAwayCodes(in bytes: [UInt8]) -> [UInt32] {
        frames(in: bytes).filter { $0.type == FrameType.goAway.rawValue && $0.payload.count >= 8 }.map {
            UInt32($0.payload[4]) << 24 | UInt32($0.payload[5]) << 16 | UInt32($0.payload[6]) << 8 | UInt32($0.payload[7])
        }
    }
}

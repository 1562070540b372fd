import LambdaPayload
import NIOCore
import NIOHTTP1

/// Reads a client's HTTP/1.x requests from the connection's bytes (RFC 9112) as the parts the
/// connection's state machine takes: head, pieces of the body, end. It takes the place of NIO's
/// request decoder (llhttp behind a `ByteToMessageHandler`): a handler, a buffer copy and a
/// callback per header less on every request.
///
/// It accepts no more than llhttp (as NIO configures it) does, and frames what it accepts as
/// llhttp does (`Fuzz/FuzzHTTP1Head` checks both on the same bytes); where llhttp is lenient it
/// may refuse. The rules, with `HTTP1Syntax`'s for every line and field:
/// - a request line `METHOD SP target SP HTTP/1.0|HTTP/1.1 CRLF`: a method llhttp knows, a
///   target of visible ASCII;
/// - Envoy's limits as NIO counts them (`RequestReader.limits`): the target, field names and
///   values at most 60 KiB together, at most 100 fields, a trailer section of 60 KiB; over them
///   is `isTooLarge` (431);
/// - the body is chunked (`Transfer-Encoding: chunked`, the only coding), or as long as one
///   `Content-Length` of digits says, or empty; both framings at once are refused;
/// - after a CONNECT, a request with `Upgrade`, or one that does not keep the connection alive
///   (HTTP/1.0 without `keep-alive`, `Connection: close`), nothing more is parsed: what follows
///   is dropped (the connection closes after the answer).
struct HTTP1RequestParser {
    typealias Error = HTTP1Syntax.Error

    enum State {
        case head
        case body(HTTP1BodyReader)
        /// After a CONNECT, an Upgrade, or a request that closes the connection.
        case stopped
        case failed
    }

    private(set) var state: State = .head
    private var search = HTTP1Syntax.HeadSearch()
    /// The request being read leaves HTTP/1.1 behind or closes the connection: parsing stops after it.
    private var stopsAfter = false

    /// The target, field names and values together may be this long (NIO's `maxHeaderListSize`).
    static let maximumHeaderBytes = RequestReader.limits.maxHeaderListSize
    static let maximumFieldCount = RequestReader.limits.maxHeaderFieldCount
    /// A head (request line, fields, line ends) may be this long whole.
    static let maximumHeadBytes = 64 * 1024

    /// A request could not be parsed: the connection is being closed, and bytes that still come
    /// close it at once.
    var hasFailed: Bool {
        if case .failed = state { return true }
        return false
    }

    /// Whether a request's head has been read and not all of its body.
    var isInsideBody: Bool {
        switch state {
        case .body: true
        case .head, .stopped, .failed: false
        }
    }

    /// The next part from `buffer`, whose bytes it consumes; nil when more bytes are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws(Error) -> HTTPServerRequestPart? {
        do {
            switch state {
            case .head:
                // Empty lines before a request line are ignored (RFC 9112 §2.2), as llhttp does: a
                // client may end a body with an extra CRLF.
                var skipped = false
                while buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
                    buffer.moveReaderIndex(forwardBy: 2)
                    skipped = true
                }
                // The search counts from the reader index: bytes it had looked at are gone now, and
                // what it saw last time (the CR of a line split between two reads) is not where
                // it thinks. Left as it was, it skipped the byte after them (the bare LF of
                // `\r\n\n`, read whole as an error, missed when the CR came alone).
                if skipped { search = HTTP1Syntax.HeadSearch() }
                guard let length = try search.headLength(buffer, limit: Self.maximumHeadBytes) else { return nil }
                let (head, framing, endsConnection) = try buffer.withUnsafeReadableBytes { bytes throws(Error) in
                    try Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[..<length]))
                }
                buffer.moveReaderIndex(forwardBy: length)
                // HTTP/1.0 with chunks is faulty framing (RFC 9112 §6.1): nothing after it is read
                // (the request itself is refused).
                stopsAfter = head.method == .CONNECT || endsConnection || (head.version == .http1_0 && framing == .chunked)
                state = .body(HTTP1BodyReader(framing, maximumTrailerBytes: Self.maximumHeaderBytes))
                return .head(head)
            case .body(var reader):
                let event = try reader.next(&buffer)
                switch event {
                case .body(let bytes):
                    state = .body(reader)
                    return .body(bytes)
                case .end:
                    state = stopsAfter ? .stopped : .head
                    return .end(nil)
                case nil:
                    state = .body(reader)
                    return nil
                }
            case .stopped, .failed:
                // Dropped, never kept: a client streaming bytes behind a CONNECT, or after a
                // request that could not be parsed, cannot make the connection hold them.
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                return nil
            }
        } catch {
            state = .failed
            throw error
        }
    }

    /// The head of a request, its empty line included; how its body is framed; whether the
    /// connection ends after it (`ConnectionOptions`).
    static func parseHead(_ bytes: UnsafeRawBufferPointer) throws(Error) -> (HTTPRequestHead, HTTP1BodyReader.Framing, endsConnection: Bool) {
        // The request line.
        var index = 0
        while index < bytes.count, bytes[index] != 0x20 {
            guard HTTPField.isTokenByte(bytes[index]) else { throw Error("the method is not a token") }
            index += 1
        }
        let method = try Self.method(UnsafeRawBufferPointer(rebasing: bytes[..<index]))
        index += 1
        let targetStart = index
        while index < bytes.count, bytes[index] != 0x20 {
            guard bytes[index] > 0x20, bytes[index] < 0x7F else { throw Error("the request target holds a byte that is not visible ASCII") }
            index += 1
        }
        guard index > targetStart else { throw Error("the request line has no target") }
        let target = UnsafeRawBufferPointer(rebasing: bytes[targetStart..<index])
        guard isTargetForm(target, connect: method == .CONNECT) else { throw Error("the request target is neither a path, *, an absolute URL, nor for CONNECT host:port") }
        index += 1
        guard index + 10 <= bytes.count, bytes[index] == UInt8(ascii: "H"), bytes[index + 1] == UInt8(ascii: "T"), bytes[index + 2] == UInt8(ascii: "T"),
            bytes[index + 3] == UInt8(ascii: "P"), bytes[index + 4] == UInt8(ascii: "/"), bytes[index + 5] == UInt8(ascii: "1"), bytes[index + 6] == UInt8(ascii: "."),
            bytes[index + 7] == UInt8(ascii: "0") || bytes[index + 7] == UInt8(ascii: "1"), bytes[index + 8] == 0x0D, bytes[index + 9] == 0x0A
        else { throw Error("the request line does not end in HTTP/1.0 or HTTP/1.1") }
        let version: HTTPVersion = bytes[index + 7] == UInt8(ascii: "1") ? .http1_1 : .http1_0
        var counted = target.count
        guard counted <= maximumHeaderBytes else { throw Error("the request target is over \(maximumHeaderBytes) bytes", tooLarge: true) }

        var fields: [(String, String)] = []
        fields.reserveCapacity(16)
        var contentLength: Int?
        var chunked = false
        var options = ConnectionOptions()
        _ = try HTTP1Syntax.forEachField(in: bytes, from: index + 10) { name, value throws(Error) in
            counted += name.count + value.count
            guard counted <= maximumHeaderBytes else { throw Error("the request's fields are over \(maximumHeaderBytes) bytes", tooLarge: true) }
            guard fields.count < maximumFieldCount else { throw Error("the request has more than \(maximumFieldCount) fields", tooLarge: true) }
            switch name.count {
            case 14 where HTTP1Syntax.equalsLowercased(name, "content-length"):
                guard contentLength == nil else { throw Error("a second Content-Length") }
                // Digits and nothing after them: the byte past the value (inside its line, which
                // ends in CR) is the line's CR, not whitespace that llhttp would refuse.
                let followedByCR = value.baseAddress.map { $0.load(fromByteOffset: value.count, as: UInt8.self) == 0x0D } ?? false
                guard (1...18).contains(value.count), followedByCR, value.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                    throw Error("Content-Length \"\(String(decoding: value, as: UTF8.self))\" is not a number")
                }
                contentLength = value.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            case 17 where HTTP1Syntax.equalsLowercased(name, "transfer-encoding"):
                guard !chunked, HTTP1Syntax.equalsLowercased(value, "chunked") else {
                    throw Error("Transfer-Encoding \"\(String(decoding: value, as: UTF8.self))\" is not the one coding the gateway reads, chunked")
                }
                chunked = true
            case 7 where HTTP1Syntax.equalsLowercased(name, "upgrade"):
                options.sawUpgrade()
            case 10 where HTTP1Syntax.equalsLowercased(name, "connection"):
                options.readConnection(value)
            default:
                break
            }
            fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        let framing: HTTP1BodyReader.Framing
        if method == .CONNECT {
            // What follows a CONNECT's head is the tunnel's, never a body (and is not parsed).
            framing = .none
        } else if chunked {
            guard contentLength == nil else { throw Error("both Content-Length and Transfer-Encoding frame the request") }
            framing = .chunked
        } else if let contentLength {
            framing = .length(contentLength)
        } else {
            framing = .none
        }
        let head = HTTPRequestHead(version: version, method: method, uri: String(decoding: target, as: UTF8.self), headers: HTTPHeaders(fields))
        return (head, framing, options.endsConnection(version: version))
    }

    /// `/path`, `*`, `scheme://host[:port][/path]`, or for CONNECT `host[:port]`: the forms of a
    /// target llhttp reads (its bytes are visible ASCII already).
    static func isTargetForm(_ target: UnsafeRawBufferPointer, connect: Bool) -> Bool {
        if target[0] == UInt8(ascii: "/") { return true }
        if connect { return hostAndPort(target, from: 0) == target.count }
        if target.count == 1 && target[0] == UInt8(ascii: "*") { return true }
        var index = 0
        while index < target.count, isLetter(target[index]) { index += 1 }
        guard index > 0, index + 3 < target.count, target[index] == UInt8(ascii: ":"), target[index + 1] == UInt8(ascii: "/"), target[index + 2] == UInt8(ascii: "/"),
            let end = hostAndPort(target, from: index + 3)
        else { return false }
        return end == target.count || target[end] == UInt8(ascii: "/")
    }

    /// Where `host[:port]` from `start` ends (a host of letters, digits, `-` and `.`), or nil.
    private static func hostAndPort(_ target: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var index = start
        while index < target.count, isLetter(target[index]) || isDigit(target[index]) || target[index] == UInt8(ascii: "-") || target[index] == UInt8(ascii: ".") {
            index += 1
        }
        guard index > start else { return nil }
        if index < target.count, target[index] == UInt8(ascii: ":") {
            index += 1
            let port = index
            while index < target.count, isDigit(target[index]) { index += 1 }
            guard index > port else { return nil }
        }
        return index
    }

    private static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// A method llhttp knows (`HTTPMethod`'s cases), spelt as on the wire.
    static func method(_ bytes: UnsafeRawBufferPointer) throws(Error) -> HTTPMethod {
        guard !bytes.isEmpty else { throw Error("the request line has no method") }
        let text = String(decoding: bytes, as: UTF8.self)
        switch text {
        case "M-SEARCH": return .MSEARCH
        case "MSEARCH": break
        default:
            let method = HTTPMethod(rawValue: text)
            if case .RAW = method { break }
            return method
        }
        throw Error("the method \(text) is not one the gateway knows")
    }
}

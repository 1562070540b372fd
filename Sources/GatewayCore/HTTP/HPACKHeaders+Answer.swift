import LambdaPayload
import NIOHPACK

/// The one place where the gateway's header model (`HTTPField`) becomes HTTP/2's wire type for an
/// answer (HTTP/1.1 answers are written from the fields directly, by `HTTP1ResponseEncoder`;
/// requests become fields in `RequestReader.fields`). docs/ARCHITECTURE.md, "Header types", lists
/// every conversion.
extension HPACKHeaders {
    /// A field HTTP/2 forbids in any message (RFC 9113 §8.2.2; the payload codecs drop them
    /// already), by a lower-case name: compared by length first, without hashing the name.
    static func isConnectionSpecific(_ name: String) -> Bool {
        switch name.utf8.count {
        case 7: return name == "upgrade"
        case 10: return name == "connection" || name == "keep-alive"
        case 16: return name == "proxy-connection"
        case 17: return name == "transfer-encoding"
        default: return false
        }
    }

    /// An answer's head: `:status`, then the answer's fields with lower-case names (HTTP/2 requires
    /// them; a function may send `Content-Type`), without a field that is not well formed or is
    /// connection-specific, and with `contentLength` (when given) in place of the answer's own. As
    /// on HTTP/1.1, a 1xx, 204 or 304 has no `content-length` (RFC 9110 §8.6).
    init(answerHead response: LambdaHTTPResponse, contentLength: Int?) {
        self.init()
        reserveCapacity(response.headers.count + 2)
        add(name: ":status", value: String(response.status))
        for field in response.headers where field.isWellFormed {
            let name = field.name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) ? field.name.lowercased() : field.name
            if contentLength != nil && name.utf8.count == 14 && name == "content-length" { continue }
            if Self.isConnectionSpecific(name) { continue }
            add(name: name, value: field.value)
        }
        if let contentLength, response.status >= 200, response.status != 204, response.status != 304 {
            add(name: "content-length", value: String(contentLength))
        }
    }
}

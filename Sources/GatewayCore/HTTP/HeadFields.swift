import LambdaPayload
import NIOHTTP1

/// What a request head's fields say, read in one pass: the fields the request carries on, and
/// every fact the head's checks (`RequestReader.refusal`), the go-ahead (`Expect`) and the
/// connection (`endsConnection`) need. Four passes did this before, each copying every name and
/// value out of `HTTPHeaders`.
///
/// Each fact is read as the NIO look-up it replaced read it (tested against them): names compared
/// without case, told apart by their length first.
struct HeadFields {
    /// The fields, each value without the optional whitespace around it (RFC 9110 §5.5):
    /// `x-role: guest ` is `guest` to the intentions, the function and every check alike.
    var fields: [HTTPField] = []
    /// `Host` fields.
    var hosts = 0
    /// The first `Content-Length`'s value.
    var contentLength: String?
    var transferEncoding = false
    /// `Expect: 100-continue` (values split at comma bytes, whitespace around them trimmed,
    /// compared without case: as NIO's `headers[canonicalForm: "expect"]` read them, but for a
    /// comma before a combining mark, as `ConnectionOptions` says).
    var expectsContinue = false
    /// HTTP/1.x: the connection ends after this request's answer (`ConnectionOptions`).
    var endsConnection: Bool

    init(_ head: HTTPRequestHead) {
        fields.reserveCapacity(head.headers.count)
        var options = ConnectionOptions()
        for field in head.headers {
            let value = field.value
            switch field.name.utf8.count {
            case 4 where field.name.asciiCaseInsensitiveEquals("host"):
                hosts += 1
            case 6 where !expectsContinue && field.name.asciiCaseInsensitiveEquals("expect"):
                expectsContinue = Self.containsToken(value, "100-continue")
            case 7 where field.name.asciiCaseInsensitiveEquals("upgrade"):
                options.sawUpgrade()
            case 10 where field.name.asciiCaseInsensitiveEquals("connection"):
                options.readConnection(value)
            case 14 where contentLength == nil && field.name.asciiCaseInsensitiveEquals("content-length"):
                contentLength = value
            case 17 where field.name.asciiCaseInsensitiveEquals("transfer-encoding"):
                transferEncoding = true
            default:
                break
            }
            fields.append(HTTPField(field.name, RequestReader.hasSurroundingWhitespace(value) ? RequestReader.trimmingWhitespace(value) : value))
        }
        endsConnection = options.endsConnection(version: head.version)
    }

    /// Whether the comma-separated `value` holds `token`, compared without case.
    private static func containsToken(_ value: String, _ token: StaticString) -> Bool {
        var found = false
        value.withUTF8Bytes { bytes in
            HTTP1Syntax.forEachToken(bytes) { element in
                if HTTP1Syntax.equalsLowercased(element, token) { found = true }
            }
        }
        return found
    }
}

import LambdaPayload
import NIOHTTP1

/// The one place where the gateway's header model (`HTTPField`) becomes NIO's wire type for an
/// answer: the HTTP/2 streams' response heads, which NIO's codec turns into HPACK. (HTTP/1.1
/// answers are written from the fields directly, by `HTTP1ResponseEncoder`; requests become fields
/// in `RequestReader.fields`.) docs/ARCHITECTURE.md, "Header types", lists every conversion.
extension HTTPHeaders {
    init(_ fields: [HTTPField], reservingExtra extra: Int = 0) {
        self.init()
        reserveCapacity(fields.count + extra)
        for field in fields { add(name: field.name, value: field.value) }
    }
}

import LambdaPayload
import NIOCore
import NIOHTTP1

/// An answer's header fields as `UpstreamResponseParser` found them: the head's bytes (a slice of
/// what was read, not a copy) and where each field's name and value are in them. A field becomes
/// strings only when it is asked for. The Invoke client reads two fields of Lambda's answer by
/// name (`first(name:)`); the parser had made a string of every name and every value before (ten
/// strings for a Lambda answer, each value longer than 15 bytes an allocation of its own), and
/// then NIO's `HTTPHeaders` of them. Callers that want NIO's type get it (`httpHeaders`).
struct UpstreamHeaders: Sendable, Sequence {
    /// Where a field's name and value are, as offsets into the head's bytes.
    struct Field: Sendable {
        var name: Range<Int>
        var value: Range<Int>
    }

    private let head: ByteBuffer
    private let fields: [Field]

    /// No fields.
    init() {
        head = ByteBuffer()
        fields = []
    }

    /// `fields` locate names and values in `head`'s readable bytes, in the order they came.
    init(head: ByteBuffer, fields: [Field]) {
        self.head = head
        self.fields = fields
    }

    var count: Int { fields.count }

    /// The value of the first field named `name`, letters compared without case (RFC 9110 §5.1),
    /// as `HTTPHeaders.first(name:)` finds it for the names asked for (NIO also folds non-letters by
    /// their case bit: `^` and `~`, say).
    func first(name: String) -> String? {
        var name = name
        return name.withUTF8 { wanted in
            head.withUnsafeReadableBytes { bytes in
                for field in fields where field.name.count == wanted.count {
                    if String.asciiCaseInsensitiveEquals(UnsafeRawBufferPointer(rebasing: bytes[field.name]), UnsafeRawBufferPointer(wanted)) {
                        return Self.text(field.value, in: bytes)
                    }
                }
                return nil
            }
        }
    }

    /// Every field, in order, as NIO's `HTTPHeaders`.
    var httpHeaders: HTTPHeaders {
        HTTPHeaders(map { ($0.name, $0.value) })
    }

    func makeIterator() -> Iterator {
        Iterator(headers: self)
    }

    /// Each field as strings, in the order they came.
    struct Iterator: IteratorProtocol {
        fileprivate let headers: UpstreamHeaders
        fileprivate var position = 0

        mutating func next() -> (name: String, value: String)? {
            guard position < headers.fields.count else { return nil }
            let field = headers.fields[position]
            position += 1
            return headers.head.withUnsafeReadableBytes { bytes in (UpstreamHeaders.text(field.name, in: bytes), UpstreamHeaders.text(field.value, in: bytes)) }
        }
    }

    /// The bytes at `range` of the head as a string.
    private static func text(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}

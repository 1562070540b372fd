import LambdaPayload
import NIOHPACK

/// RFC 9113's rules for the fields of a request's header block (§8.2, §8.3) and of its trailers
/// (§8.1), checked as `HTTP2StreamStateMachine.requestHead` reads the block. A block that breaks
/// one is malformed: its stream is reset with PROTOCOL_ERROR and nothing is invoked.
///
/// NIO's HTTP/2 handler checked the same rules (its `headerBlockValidation`, which the gateway turns
/// off). Its check took each name as a `Substring` and compared it with strings field by field, and
/// it checked the gateway's answers too, whose fields `HPACKHeaders(answerHead:)` makes well formed:
/// some 12,000 instructions a request. `HTTP2FieldRulesTests` holds these rules to NIO's verdicts.
///
/// - A name is a lower-case token; a pseudo-header's is `:` and one.
/// - Pseudo-headers come before the other fields, each known and at most once: `:method`,
///   `:scheme` and `:path` required, `:authority` allowed; a CONNECT carries `:method` and
///   `:authority` only. `:protocol` is refused (the gateway offers no extended CONNECT), as is
///   `:status`. `:path` is not empty.
/// - A pseudo-header's value has no control byte, space or DEL; any other value no NUL, CR or LF.
/// - No connection-specific field (`connection`, `keep-alive`, `proxy-connection`,
///   `transfer-encoding`, `upgrade`); `te` only as `trailers`.
/// - Trailers carry no pseudo-header.
enum HTTP2FieldRules {
    struct Violation: Error, CustomStringConvertible, Equatable {
        let description: String
    }

    /// The pseudo-header fields a request may carry, as a set.
    struct Pseudo: OptionSet {
        let rawValue: UInt8
        static let method = Pseudo(rawValue: 1)
        static let scheme = Pseudo(rawValue: 2)
        static let path = Pseudo(rawValue: 4)
        static let authority = Pseudo(rawValue: 8)

        static let required: Pseudo = [.method, .scheme, .path]
        static let allowed: Pseudo = [.method, .scheme, .path, .authority]
        static let connect: Pseudo = [.method, .authority]
    }

    /// The pseudo-header `name` (with its colon).
    static func pseudo(_ name: String) throws(Violation) -> Pseudo {
        switch name.utf8.count {
        case 5 where name == ":path": return .path
        case 7 where name == ":method": return .method
        case 7 where name == ":scheme": return .scheme
        case 10 where name == ":authority": return .authority
        default:
            let known = [":status", ":protocol"].contains(name)
            throw Violation(description: "the pseudo-header \(LogSafe.text(name)) is \(known ? "not allowed in a request" : "unknown")")
        }
    }

    /// The pseudo-headers a request carried, checked as a whole.
    static func check(pseudoHeaders seen: Pseudo, method: String?) throws(Violation) {
        if method == "CONNECT" {
            guard seen == .connect else { throw Violation(description: "a CONNECT request carries :method and :authority only") }
        } else {
            guard seen.isSuperset(of: .required), Pseudo.allowed.isSuperset(of: seen) else {
                throw Violation(description: "a request carries :method, :scheme and :path")
            }
        }
    }

    /// A pseudo-header's value: no control byte, space or DEL.
    static func checkPseudoValue(_ value: String, of name: String) throws(Violation) {
        if !allBytes(of: value, satisfy: { $0 > 0x20 && $0 != 0x7F }) {
            throw Violation(description: "the value of \(name) has a space or control byte")
        }
    }

    /// A field that is not a pseudo-header.
    static func check(field name: String, value: String, checksTE: Bool = true) throws(Violation) {
        guard isLowerCaseToken(name) else { throw Violation(description: "the field name \(LogSafe.text(name)) is not a lower-case token") }
        if HPACKHeaders.isConnectionSpecific(name) { throw Violation(description: "the connection-specific field \(name) is not allowed in HTTP/2") }
        if checksTE, name.utf8.count == 2, name == "te", value != "trailers" { throw Violation(description: "te is allowed only as trailers") }
        guard HTTPField.hasNoLineBreakOrNUL(value) else { throw Violation(description: "the value of \(name) has a NUL, CR or LF") }
    }

    /// The fields of a request's trailers: as any field's, but `te` goes unchecked there, as NIO
    /// left it (the gateway passes no trailers on).
    static func check(trailers: HPACKHeaders) throws(Violation) {
        for (name, value, _) in trailers {
            if name.utf8.first == UInt8(ascii: ":") { throw Violation(description: "trailers carry no pseudo-header") }
            try check(field: name, value: value, checksTE: false)
        }
    }

    /// Whether a request with this header block, and these trailers, breaks the rules as the
    /// stream checks them on arrival (`HTTP2StreamStateMachine.requestHead`, `check(trailers:)`). A
    /// missing `:authority` is the gateway's own rule (a 400), not RFC 9113's. The one verdict that
    /// `HTTP2FieldRulesTests` and `FuzzHTTP2Fields` hold to NIO's.
    static func isMalformed(request head: HPACKHeaders, trailers: HPACKHeaders?) -> Bool {
        do {
            _ = try HTTP2StreamStateMachine.requestHead(head)
        } catch .malformed {
            return true
        } catch {
            // Not malformed: answered 400 (no :authority).
        }
        guard let trailers else { return false }
        do {
            try check(trailers: trailers)
            return false
        } catch {
            return true
        }
    }

    /// A field's name (not a pseudo-header's): a token without upper-case letters.
    static func isLowerCaseToken(_ name: String) -> Bool {
        !name.isEmpty && allBytes(of: name, satisfy: isLowerCaseTokenByte)
    }

    /// Whether every byte of `text` satisfies `test`, read from the string's own storage (a
    /// `String.UTF8View` walked as a collection costs several times more per byte).
    @inline(__always)
    private static func allBytes(of text: String, satisfy test: (UInt8) -> Bool) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { $0.allSatisfy(test) } ?? text.utf8.allSatisfy(test)
    }

    /// `HTTPField.isTokenByte` without `A`–`Z`.
    @inline(__always)
    static func isLowerCaseTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0..<64: HTTPField.tokenBytesBelow64 & (1 << UInt64(byte)) != 0
        case 64..<128: lowerCaseTokenBytesFrom64 & (1 << UInt64(byte - 64)) != 0
        default: false
        }
    }

    /// `HTTPField.tokenBytesFrom64` less bits 1–26 (`A`–`Z`).
    static let lowerCaseTokenBytesFrom64: UInt64 = HTTPField.tokenBytesFrom64 & ~0x07FF_FFFE
}

import LambdaPayload

/// What `%REQ(A?B)%` or `%RESP(A?B)%` reads: header `A`, else header `B`. Names match without
/// regard to ASCII case; the first field of that name is taken.
struct AccessLogHeaderChoice: Sendable, Hashable {
    enum Name: Sendable, Hashable {
        /// `:METHOD`, the entry's method.
        case method
        /// `:PATH`, the entry's request target.
        case path
        /// `:AUTHORITY`: the `:authority` field, else `host`.
        case authority
        /// `:SCHEME`: `https` on a TLS connection, else `http`.
        case scheme
        /// `RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)`: that response field, else the entry's Invoke time.
        case upstreamServiceTime
        /// Any other field, by its lower-cased name.
        case field([UInt8])
    }

    var main: Name
    var alternative: Name?

    /// `argument` is what stands between the parentheses; `written` the whole operator, for errors.
    init(argument: String, ofResponse: Bool, written: String) throws(AccessLogFormatError) {
        let parts = argument.split(separator: "?", omittingEmptySubsequences: false)
        guard parts.count <= 2 else {
            throw AccessLogFormatError(.malformedOperator, "access-log operator \(written) names more than two headers; write A?B")
        }
        guard parts.allSatisfy({ !$0.isEmpty }) else {
            throw AccessLogFormatError(.missingHeaderName, "access-log operator \(written) lacks a header name on one side of ?")
        }
        main = Self.name(parts[0], ofResponse: ofResponse)
        alternative = parts.count == 2 ? Self.name(parts[1], ofResponse: ofResponse) : nil
    }

    private static func name(_ text: Substring, ofResponse: Bool) -> Name {
        let lowered = text.utf8.map(lowercased)
        switch (ofResponse, String(decoding: lowered, as: UTF8.self)) {
        case (false, ":method"): return .method
        case (false, ":path"): return .path
        case (false, ":authority"): return .authority
        case (false, ":scheme"): return .scheme
        case (true, "x-envoy-upstream-service-time"): return .upstreamServiceTime
        default: return .field(lowered)
        }
    }

    func requestValue(in entry: AccessLogEntry) -> AccessLogValue {
        let value = Self.requestValue(main, in: entry)
        guard case .missing = value, let alternative else { return value }
        return Self.requestValue(alternative, in: entry)
    }

    func responseValue(in entry: AccessLogEntry) -> AccessLogValue {
        let value = Self.responseValue(main, in: entry)
        guard case .missing = value, let alternative else { return value }
        return Self.responseValue(alternative, in: entry)
    }

    private static func requestValue(_ name: Name, in entry: AccessLogEntry) -> AccessLogValue {
        switch name {
        case .method: return .string(entry.method)
        case .path: return .string(entry.path)
        case .authority:
            return field(Self.authority, in: entry.requestHeaders) ?? field(Self.host, in: entry.requestHeaders) ?? .missing
        case .scheme: return .text(entry.connection.tlsVersion == nil ? "http" : "https")
        case .upstreamServiceTime: return field(Self.upstreamServiceTime, in: entry.requestHeaders) ?? .missing
        case .field(let lowered): return field(lowered, in: entry.requestHeaders) ?? .missing
        }
    }

    private static func responseValue(_ name: Name, in entry: AccessLogEntry) -> AccessLogValue {
        switch name {
        case .upstreamServiceTime:
            guard let value = field(Self.upstreamServiceTime, in: entry.responseHeaders) else {
                return .milliseconds(entry.upstreamServiceTime)
            }
            // Whole milliseconds, as Envoy sends them: a number, so JSON keeps the default's type.
            if case .text(let text) = value, let number = canonicalInteger(text) { return .number(number) }
            return value
        case .field(let lowered): return field(lowered, in: entry.responseHeaders) ?? .missing
        case .method, .path, .authority, .scheme: return .missing  // only made for requests
        }
    }

    private static let authority = Array(":authority".utf8)
    private static let host = Array("host".utf8)
    private static let upstreamServiceTime = Array("x-envoy-upstream-service-time".utf8)

    /// The first field named `lowered` (compared without regard to ASCII case); an empty value is a
    /// value, as in Envoy.
    private static func field(_ lowered: [UInt8], in fields: [HTTPField]) -> AccessLogValue? {
        for field in fields where field.name.utf8.count == lowered.count {
            if field.name.utf8.elementsEqual(lowered, by: { lowercased($0) == $1 }) {
                return .text(Substring(field.value))
            }
        }
        return nil
    }

    /// Digits without a sign or a leading zero, short enough for `Int64`: what may be written as a
    /// JSON number as it is.
    private static func canonicalInteger(_ text: Substring) -> Int64? {
        let utf8 = text.utf8
        guard (1...18).contains(utf8.count), utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        guard utf8.count == 1 || utf8.first != UInt8(ascii: "0") else { return nil }
        return Int64(text)
    }
}

@inline(__always)
private func lowercased(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
}

import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns a client request into the Invoke payload (docs/COMPATIBILITY.md, Payload formats).
public enum RequestEncoder {
    /// Encodes `request` for the service. With `passthrough` the body is the payload and must be
    /// empty or JSON (docs/DECISIONS.md D12).
    public static func encode(
        _ request: HTTPRequestView,
        format: PayloadFormat,
        passthrough: Bool = false,
        context: PayloadContext
    ) throws(PayloadError) -> ByteBuffer {
        if passthrough {
            return try passthroughPayload(request.body)
        }
        switch format {
        case .envoy: return envoy(request)
        case .apiGatewayV2: return apiGatewayV2(request, context: context)
        }
    }

    static func passthroughPayload(_ body: ByteBuffer) throws(PayloadError) -> ByteBuffer {
        guard body.readableBytes > 0 else { return body }
        do {
            _ = try body.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
        } catch {
            throw PayloadError(.invalidRequestContent, "passthrough request body is not JSON (\(error))")
        }
        return body
    }

    // MARK: envoy (docs/COMPATIBILITY.md, Payload formats)

    static func envoy(_ request: HTTPRequestView) -> ByteBuffer {
        let headers = PayloadHeaders(request.headers, includeHost: false, includeCookie: true, authority: nil)
        var writer = JSONWriter(capacity: request.body.readableBytes * 4 / 3 + headers.estimatedBytes + request.path.utf8.count + (request.query?.utf8.count ?? 0) + 256)
        writer.beginObject()
        headers.writeMember(to: &writer, atOpening: true)
        writer.key(literal: "raw_path")
        if let query = request.query {
            writer.string(request.path + "?" + query)
        } else {
            writer.string(request.path)
        }
        writer.member(literal: "method", request.method)
        headers.writeMember(to: &writer, atOpening: false)
        writer.key(literal: "query_string_parameters")
        writer.beginObject()
        var seen = Set<Substring>()
        for parameter in QueryString.parameters(request.query ?? "") where seen.insert(parameter.name).inserted {
            writer.key(String(parameter.name))
            writer.string(String(parameter.value))
        }
        writer.endObject()
        let text = writeBody(request, to: &writer)
        writer.member(literal: "is_base64_encoded", !text)
        writer.endObject()
        return writer.buffer
    }

    // MARK: apigateway-v2 (API Gateway HTTP API payload format 2.0)

    static func apiGatewayV2(_ request: HTTPRequestView, context: PayloadContext) -> ByteBuffer {
        let headers = PayloadHeaders(request.headers, includeHost: true, includeCookie: false, authority: request.authority)
        var writer = JSONWriter(capacity: request.body.readableBytes * 4 / 3 + headers.estimatedBytes + request.path.utf8.count + (request.query?.utf8.count ?? 0) + 1024)
        writer.beginObject()
        headers.writeMember(to: &writer, atOpening: true)
        writer.member("version", "2.0")
        writer.member("routeKey", "$default")
        writer.member("rawPath", request.path)
        writer.member("rawQueryString", request.query ?? "")

        let cookies = request.headers
            .filter { $0.name.asciiCaseInsensitiveEquals("cookie") }
            .flatMap { $0.value.split(separator: ";") }
            .map { String($0).trimmingASCIIWhitespace() }
            .filter { !$0.isEmpty }
        if !cookies.isEmpty {
            writer.key("cookies")
            writer.beginArray()
            for cookie in cookies { writer.string(cookie) }
            writer.endArray()
        }

        headers.writeMember(to: &writer, atOpening: false)

        if let query = request.query, !query.isEmpty {
            var names: [String] = []
            var values: [String: String] = [:]
            for parameter in QueryString.parameters(query) {
                let name = QueryString.decode(parameter.name)
                let value = QueryString.decode(parameter.value)
                if let existing = values[name] {
                    values[name] = existing + "," + value
                } else {
                    names.append(name)
                    values[name] = value
                }
            }
            writer.key("queryStringParameters")
            writer.beginObject()
            for name in names {
                writer.member(name, values[name]!)
            }
            writer.endObject()
        }

        let requestID = request.firstValue("x-request-id") ?? ""
        let domainName = hostWithoutPort(request.authority ?? "")
        writer.key("requestContext")
        writer.beginObject()
        writer.member("accountId", context.accountID)
        writer.member("apiId", context.serviceName)
        writer.key("authentication")
        writer.null()
        writer.key("authorizer")
        writer.null()
        writer.member("domainName", domainName)
        writer.member("domainPrefix", String(domainName.split(separator: ".", omittingEmptySubsequences: false).first ?? ""))
        writer.key("http")
        writer.beginObject()
        writer.member("method", request.method)
        writer.member("path", request.path)
        writer.member("protocol", request.protocolName)
        writer.member("sourceIp", request.sourceIP)
        writer.member("userAgent", request.firstValue("user-agent") ?? "")
        writer.endObject()
        writer.member("requestId", requestID)
        writer.member("routeKey", "$default")
        writer.member("stage", "$default")
        let epochMilliseconds = Int((request.receivedAt.timeIntervalSince1970 * 1000).rounded(.down))
        writer.member("time", accessLogTime(epochSeconds: epochMilliseconds / 1000))
        writer.member("timeEpoch", epochMilliseconds)
        writer.endObject()

        var text = true
        if request.body.readableBytes > 0 {
            text = writeBody(request, to: &writer)
        }
        writer.member("isBase64Encoded", !text)
        writer.endObject()
        return writer.buffer
    }

    // MARK: Shared pieces

    /// The bytes every payload opens with whose headers carry `value`, escaped once, as their only
    /// `name` field: `{"headers":{"name":"value"`, written by `PayloadHeaders` as a payload's own
    /// opening is.
    public static func lead(name: String, value: PreEscapedString) -> [UInt8] {
        var writer = JSONWriter(capacity: name.utf8.count + value.json.readableBytes + 16)
        writer.beginObject()
        PayloadHeaders([HTTPField(name, value)], includeHost: false, includeCookie: true, authority: nil).writeOpening(to: &writer)
        return Array(writer.bytes)
    }

    /// Writes the body as text or base64 and returns whether it was text.
    static func writeBody(_ request: HTTPRequestView, to writer: inout JSONWriter) -> Bool {
        let text = BodyEncoding.isText(
            contentType: request.firstValue("content-type"),
            contentEncoding: request.firstValue("content-encoding"),
            body: request.body
        )
        writer.key(literal: "body")
        if text {
            writer.string(utf8: request.body.readableBytesView)
        } else {
            writer.rawString { buffer in
                request.body.withUnsafeReadableBytes { Base64.encode($0, into: &buffer) }
            }
        }
        return text
    }

    static func hostWithoutPort(_ authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[...close])
        }
        if let colon = authority.lastIndex(of: ":") {
            return String(authority[..<colon])
        }
        return authority
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `dd/MMM/yyyy:HH:mm:ss +0000` in UTC with English month names.
    static func accessLogTime(epochSeconds: Int) -> String {
        var seconds = time_t(epochSeconds)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(two(parts.tm_mday))/\(months[Int(parts.tm_mon)])/\(parts.tm_year + 1900):\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}

/// Query strings as Envoy and API Gateway split them: on `&`, each part at its first `=`.
enum QueryString {
    static func parameters(_ query: String) -> [(name: Substring, value: Substring)] {
        guard !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { part in
            if let equals = part.firstIndex(of: "=") {
                return (part[..<equals], part[part.index(after: equals)...])
            }
            return (part, "")
        }
    }

    /// Percent-decoding only (`+` stays `+`); invalid escapes are kept as written.
    static func decode(_ text: Substring) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return String(text) }
        var out = [UInt8]()
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = Character(Unicode.Scalar(bytes[index + 1])).hexDigitValue,
                let low = Character(Unicode.Scalar(bytes[index + 2])).hexDigitValue
            {
                out.append(UInt8(high << 4 | low))
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

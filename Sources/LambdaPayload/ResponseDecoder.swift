import NIOCore

/// Turns what Lambda answered into the client's response (docs/COMPATIBILITY.md, Function results).
public enum ResponseDecoder {
    /// The function's response headers may take this many bytes in all (names and values), as the
    /// request side allows a client (Envoy's 60 KiB plus room for the gateway's own): more is a
    /// malformed result, not something to hand a client.
    public static let defaultMaximumHeaderBytes = 64 * 1024

    /// Maps an Invoke result. `method` decides whether a body may be sent (`HEAD`).
    public static func response(
        for result: LambdaInvocationResult,
        format: PayloadFormat,
        passthrough: Bool,
        method: String,
        maximumHeaderBytes: Int = defaultMaximumHeaderBytes
    ) throws(PayloadError) -> LambdaHTTPResponse {
        var response: LambdaHTTPResponse
        if let functionError = result.functionError {
            // docs/DECISIONS.md D1: a failed function is an upstream error, not a 200.
            response = LambdaHTTPResponse(
                status: 502,
                headers: [HTTPField("content-type", "application/json"), HTTPField("x-amz-function-error", functionError)],
                body: result.payload
            )
        } else if result.statusCode == 202 {
            response = LambdaHTTPResponse(status: 202)
        } else if passthrough {
            response = LambdaHTTPResponse(status: 200, headers: [HTTPField("content-type", "application/json")], body: result.payload)
        } else {
            response = try decodeSynchronous(result.payload, format: format, maximumHeaderBytes: maximumHeaderBytes)
        }
        if let requestID = result.requestID {
            response.headers.append(HTTPField("x-amzn-requestid", requestID))
        }
        if method == "HEAD" || response.status == 204 || response.status == 304 {
            response.body.clear()
        }
        return response
    }

    /// A shaped result becomes a response; anything else is returned as JSON unchanged (docs/DECISIONS.md D8).
    static func decodeSynchronous(_ payload: ByteBuffer, format: PayloadFormat, maximumHeaderBytes: Int = defaultMaximumHeaderBytes) throws(PayloadError) -> LambdaHTTPResponse {
        if payload.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            return LambdaHTTPResponse(status: 200)
        }
        let value: JSONValue
        do {
            value = try payload.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
        } catch {
            throw PayloadError(.invalidFunctionResponse, "function result is not JSON: \(error)")
        }
        guard case .object = value, isShaped(value, format: format) else {
            return LambdaHTTPResponse(status: 200, headers: [HTTPField("content-type", "application/json")], body: payload)
        }
        return try build(from: value, maximumHeaderBytes: maximumHeaderBytes)
    }

    static let envoyShapeKeys = ["statusCode", "status_code", "headers", "multiValueHeaders", "cookies", "body", "isBase64Encoded", "is_base64_encoded"]

    static func isShaped(_ value: JSONValue, format: PayloadFormat) -> Bool {
        switch format {
        case .envoy: return envoyShapeKeys.contains { value[$0] != nil }
        case .apiGatewayV2: return value["statusCode"] != nil || value["status_code"] != nil
        }
    }

    /// The members `build` reads, found in one pass (the last of a repeated name, as `JSONValue`'s
    /// subscript gives it), each name compared only with those of its length.
    struct ResultMembers {
        var statusCode: JSONValue?
        var status_code: JSONValue?
        var isBase64Encoded: JSONValue?
        var is_base64_encoded: JSONValue?
        var body: JSONValue?
        var headers: JSONValue?
        var multiValueHeaders: JSONValue?
        var cookies: JSONValue?

        init(_ object: JSONValue) {
            guard case .object(let members) = object else { return }
            for member in members {
                let name = member.name
                switch name.utf8.count {
                case 4 where name == "body": body = member.value
                case 7 where name == "headers": headers = member.value
                case 7 where name == "cookies": cookies = member.value
                case 10 where name == "statusCode": statusCode = member.value
                case 11 where name == "status_code": status_code = member.value
                case 15 where name == "isBase64Encoded": isBase64Encoded = member.value
                case 17 where name == "is_base64_encoded": is_base64_encoded = member.value
                case 17 where name == "multiValueHeaders": multiValueHeaders = member.value
                default: break
                }
            }
        }
    }

    static func build(from object: JSONValue, maximumHeaderBytes: Int = defaultMaximumHeaderBytes) throws(PayloadError) -> LambdaHTTPResponse {
        let members = ResultMembers(object)
        let status = try statusCode(members.statusCode ?? members.status_code)
        let base64 = try flag(members.isBase64Encoded ?? members.is_base64_encoded)

        var body = ByteBuffer()
        switch members.body {
        case nil, .null?:
            break
        case .string(let text)?:
            if base64 {
                guard let decoded = Base64.decode(text.utf8) else {
                    throw PayloadError(.invalidFunctionResponse, "body is flagged base64 but is not valid base64")
                }
                body = ByteBuffer(bytes: decoded)
            } else {
                body = ByteBuffer(string: text)
            }
        case let other?:
            body = ByteBuffer(string: other.jsonText)
        }

        var headers = ResponseHeaders()
        if let single = members.headers {
            try headers.addSingleValued(single)
        }
        if let multi = members.multiValueHeaders {
            try headers.addMultiValued(multi)
        }
        if case .array(let cookies)? = members.cookies {
            for case .string(let cookie) in cookies {
                headers.append("set-cookie", cookie)
            }
        }
        if !headers.contains("content-type") {
            headers.insertFirst("content-type", "application/json")
        }
        let headerBytes = headers.fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        guard headerBytes <= maximumHeaderBytes else {
            throw PayloadError(.invalidFunctionResponse, "the response headers take \(headerBytes) bytes, over the \(maximumHeaderBytes)-byte limit")
        }
        return LambdaHTTPResponse(status: status, headers: headers.fields, body: body)
    }

    static func statusCode(_ value: JSONValue?) throws(PayloadError) -> Int {
        let parsed: Int?
        switch value {
        case nil, .null?: return 200
        case .number(let text)?: parsed = integer(fromJSONNumber: text)
        case .string(let text)?: parsed = text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) ? Int(text) : nil
        default: parsed = nil
        }
        guard let code = parsed else {
            throw PayloadError(.invalidFunctionResponse, "statusCode must be an integer from 200 to 599")
        }
        if code == 0 { return 200 }
        // A 1xx is never a final answer: written to an HTTP/1.1 client it would make the next
        // bytes (this body, or the next request's answer) read as the response, and an HTTP/2
        // stream would wait for a final head that never comes.
        guard (200...599).contains(code) else {
            throw PayloadError(.invalidFunctionResponse, "statusCode \(code) is not a final status (200 to 599)")
        }
        return code
    }

    /// `201`, `201.0` and `2.01e2` are 201; `201.5` is not an integer.
    static func integer(fromJSONNumber text: String) -> Int? {
        if let value = Int(text) { return value }
        guard let double = Double(text), double.rounded() == double, abs(double) < 1e9 else { return nil }
        return Int(double)
    }

    static func flag(_ value: JSONValue?) throws(PayloadError) -> Bool {
        switch value {
        case nil, .null?: return false
        case .bool(let flag)?: return flag
        case .string(let text)? where text.asciiCaseInsensitiveEquals("true"): return true
        case .string(let text)? where text.asciiCaseInsensitiveEquals("false"): return false
        default: throw PayloadError(.invalidFunctionResponse, "isBase64Encoded must be a boolean")
        }
    }
}

/// The response's header list while it is built from a function result (header rules: docs/COMPATIBILITY.md, Function results).
struct ResponseHeaders {
    private(set) var fields: [HTTPField] = []

    func contains(_ name: String) -> Bool {
        fields.contains { $0.name == name }
    }

    /// A field whose name or value the gateway would never send is dropped (a cookie with CR or LF
    /// would split the response).
    mutating func append(_ name: String, _ value: String) {
        guard let name = Self.acceptedName(name), Self.isValidValue(value) else { return }
        fields.append(HTTPField(name, value))
    }

    mutating func insertFirst(_ name: String, _ value: String) {
        fields.insert(HTTPField(name, value), at: 0)
    }

    /// `headers`: later entries with the same name replace earlier ones; arrays give one field each.
    mutating func addSingleValued(_ value: JSONValue) throws(PayloadError) {
        guard case .object(let members) = value else {
            if value == .null { return }
            throw PayloadError(.invalidFunctionResponse, "headers must be an object")
        }
        for member in members {
            guard let name = Self.acceptedName(member.name) else { continue }
            switch member.value {
            case .null: continue
            case .string(let text): replace(name, with: CollectionOfOne(text))
            case .number(let text): replace(name, with: CollectionOfOne(text))
            case .bool(let flag): replace(name, with: CollectionOfOne(flag ? "true" : "false"))
            case .array(let elements):
                let values = try elements.map { element throws(PayloadError) in
                    guard case .string(let text) = element else {
                        throw PayloadError(.invalidFunctionResponse, "header \(member.name) must hold strings")
                    }
                    return text
                }
                replace(name, with: values)
            case .object:
                throw PayloadError(.invalidFunctionResponse, "header \(member.name) has an object value")
            }
        }
    }

    /// `multiValueHeaders`: each name replaces the same name from `headers`.
    mutating func addMultiValued(_ value: JSONValue) throws(PayloadError) {
        guard case .object(let members) = value else {
            if value == .null { return }
            throw PayloadError(.invalidFunctionResponse, "multiValueHeaders must be an object")
        }
        for member in members {
            guard let name = Self.acceptedName(member.name) else { continue }
            guard case .array(let elements) = member.value else {
                throw PayloadError(.invalidFunctionResponse, "multiValueHeaders.\(member.name) must be an array of strings")
            }
            var values: [String] = []
            for element in elements {
                switch element {
                case .string(let text), .number(let text): values.append(text)
                case .bool(let flag): values.append(flag ? "true" : "false")
                default: throw PayloadError(.invalidFunctionResponse, "multiValueHeaders.\(member.name) must be an array of strings")
                }
            }
            replace(name, with: values)
        }
    }

    private mutating func replace(_ name: String, with values: some Sequence<String>) {
        fields.removeAll { $0.name == name }
        for value in values where Self.isValidValue(value) {
            fields.append(HTTPField(name, value))
        }
    }

    /// The lower-cased name, or `nil` for names the gateway never sends (pseudo, hop-by-hop,
    /// content-length, or not an HTTP token).
    static func acceptedName(_ name: String) -> String? {
        let lower = name.asciiLowercased
        guard !HopByHop.contains(lower), lower != "content-length", HTTPField.isToken(lower) else { return nil }
        return lower
    }

    /// Field values may not carry CR, LF or NUL (response splitting).
    static func isValidValue(_ value: String) -> Bool {
        HTTPField.hasNoLineBreakOrNUL(value)
    }
}

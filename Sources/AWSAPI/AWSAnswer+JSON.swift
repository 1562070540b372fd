import LambdaPayload

extension AWSAnswer {
    /// The body as a JSON object: what every REST-JSON and JSON 1.1 operation answers.
    func jsonObject(_ operation: String) throws(AWSAPIError) -> JSONValue {
        let value: JSONValue
        do {
            value = try body.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
        } catch {
            throw AWSAPIError(.malformedResponse, "\(operation): the answer is not JSON: \(error)")
        }
        guard value.isObject else { throw AWSAPIError(.malformedResponse, "\(operation): the answer is not a JSON object") }
        return value
    }
}

extension JSONValue {
    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    /// A JSON object whose members are all strings (Lambda's tags), or nil.
    var stringMap: [String: String]? {
        guard case .object(let members) = self else { return nil }
        var map: [String: String] = [:]
        for member in members {
            guard let text = member.value.stringValue else { return nil }
            map[member.name] = text
        }
        return map
    }

    /// A required string member, or a `malformedResponse` error naming it.
    func requiredString(_ key: String, _ operation: String) throws(AWSAPIError) -> String {
        guard let text = self[key]?.stringValue else {
            throw AWSAPIError(.malformedResponse, "\(operation): the answer has no string \"\(key)\"")
        }
        return text
    }

    /// An optional pagination token: absent, null and "" all mean "no more pages".
    func marker(_ key: String) -> String? {
        guard let text = self[key]?.stringValue, !text.isEmpty else { return nil }
        return text
    }
}

import LambdaPayload

/// Models read from the project's JSON parser instead of Foundation's `JSONDecoder`: with 10,000
/// linked services, decoding the list watches' answers with `JSONDecoder` took 60% of the gateway's
/// CPU while one more link was served (perf, BENCHMARKS.md). Same rules as the `Decodable`
/// conformances (Go's `encoding/json`): a missing field or `null` is the zero value, a value of another
/// type is an error.
protocol FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError)
}

struct FastDecodingError: Error, CustomStringConvertible {
    var description: String
}

/// Go's zero-value rules on one JSON object.
struct ConsulObject {
    let members: [JSONMember]

    init(_ value: JSONValue) throws(FastDecodingError) {
        guard case .object(let members) = value else { throw FastDecodingError(description: "expected an object") }
        self.members = members
    }

    /// The last member of that name, as Go's decoder keeps the last duplicate.
    subscript(key: String) -> JSONValue? {
        members.last { $0.name == key }?.value
    }

    func string(_ key: String) throws(FastDecodingError) -> String {
        switch self[key] {
        case nil, .null?: return ""
        case .string(let text)?: return text
        default: throw FastDecodingError(description: "\(key) is not a string")
        }
    }

    func bool(_ key: String) throws(FastDecodingError) -> Bool {
        switch self[key] {
        case nil, .null?: return false
        case .bool(let flag)?: return flag
        default: throw FastDecodingError(description: "\(key) is not a boolean")
        }
    }

    func uint64(_ key: String) throws(FastDecodingError) -> UInt64 {
        switch self[key] {
        case nil, .null?: return 0
        case .number(let text)?:
            if let value = UInt64(text) { return value }
            // `1e2` or `5.0`: whole numbers written another way, only where a Double holds them exactly.
            if let number = Double(text), number < 9_007_199_254_740_992, let value = UInt64(exactly: number) { return value }
            throw FastDecodingError(description: "\(key) is not a whole number")
        default: throw FastDecodingError(description: "\(key) is not a number")
        }
    }

    func strings(_ key: String) throws(FastDecodingError) -> [String: String] {
        switch self[key] {
        case nil, .null?: return [:]
        case .object(let members)?:
            var map: [String: String] = [:]
            for member in members {
                guard case .string(let text) = member.value else { throw FastDecodingError(description: "\(key).\(member.name) is not a string") }
                map[member.name] = text
            }
            return map
        default: throw FastDecodingError(description: "\(key) is not an object")
        }
    }

    func array<Element: FastConsulDecodable>(_ key: String, of type: Element.Type) throws(FastDecodingError) -> [Element] {
        switch self[key] {
        case nil, .null?: return []
        case let value?: return try [Element](consulJSON: value)
        }
    }

    /// A required nested object (missing or `null` is an error, as for a non-optional property).
    func required<Value: FastConsulDecodable>(_ key: String, _ type: Value.Type) throws(FastDecodingError) -> Value {
        guard let value = self[key], value != .null else { throw FastDecodingError(description: "\(key) is missing") }
        return try Value(consulJSON: value)
    }
}

extension Array: FastConsulDecodable where Element: FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError) {
        guard case .array(let elements) = value else { throw FastDecodingError(description: "expected an array") }
        var result: [Element] = []
        result.reserveCapacity(elements.count)
        for element in elements { result.append(try Element(consulJSON: element)) }
        self = result
    }
}

extension String: FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError) {
        guard case .string(let text) = value else { throw FastDecodingError(description: "expected a string") }
        self = text
    }
}

extension Dictionary: FastConsulDecodable where Key == String, Value: FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError) {
        guard case .object(let members) = value else { throw FastDecodingError(description: "expected an object") }
        var result: [String: Value] = [:]
        result.reserveCapacity(members.count)
        for member in members { result[member.name] = try Value(consulJSON: member.value) }
        self = result
    }
}

extension FreeFormJSON: FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .number(let text):
            // `Double("1e400")` is infinity, which JSONDecoder refuses as out of range.
            guard let number = Double(text), number.isFinite else { throw FastDecodingError(description: "number \(text) out of range") }
            self = .number(number)
        case .string(let text): self = .string(text)
        case .array(let elements):
            var values: [FreeFormJSON] = []
            values.reserveCapacity(elements.count)
            for element in elements { values.append(try FreeFormJSON(consulJSON: element)) }
            self = .array(values)
        case .object(let members):
            var values: [String: FreeFormJSON] = [:]
            for member in members { values[member.name] = try FreeFormJSON(consulJSON: member.value) }
            self = .object(values)
        }
    }
}

extension EnvoyExtension: FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError) {
        let object = try ConsulObject(value)
        var arguments: FreeFormJSON?
        switch object["Arguments"] {
        case nil, .null?: arguments = nil
        case let value?: arguments = try FreeFormJSON(consulJSON: value)
        }
        self.init(Name: try object.string("Name"), Required: try object.bool("Required"), Arguments: arguments)
    }
}

extension ServiceDefaults: FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError) {
        let object = try ConsulObject(value)
        self.init(
            Kind: try object.string("Kind"),
            Name: try object.string("Name"),
            protocolName: try object.string("Protocol"),
            Meta: try object.strings("Meta"),
            EnvoyExtensions: try object.array("EnvoyExtensions", of: EnvoyExtension.self),
            Namespace: try object.string("Namespace"),
            Partition: try object.string("Partition"),
            CreateIndex: try object.uint64("CreateIndex"),
            ModifyIndex: try object.uint64("ModifyIndex")
        )
    }
}

extension GatewayService.Name: FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError) {
        let object = try ConsulObject(value)
        self.init(Name: try object.string("Name"), Namespace: try object.string("Namespace"), Partition: try object.string("Partition"))
    }
}

extension GatewayService: FastConsulDecodable {
    init(consulJSON value: JSONValue) throws(FastDecodingError) {
        let object = try ConsulObject(value)
        self.init(
            Gateway: try object.required("Gateway", Name.self),
            Service: try object.required("Service", Name.self),
            GatewayKind: try object.string("GatewayKind"),
            ServiceKind: try object.string("ServiceKind"),
            FromWildcard: try object.bool("FromWildcard"),
            CreateIndex: try object.uint64("CreateIndex"),
            ModifyIndex: try object.uint64("ModifyIndex")
        )
    }
}

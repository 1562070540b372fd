/// A JSON value of a free-form Consul field (`EnvoyExtensions[].Arguments`, `proxy-defaults` `Config`).
public indirect enum FreeFormJSON: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([FreeFormJSON])
    case object([String: FreeFormJSON])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let elements = try? container.decode([FreeFormJSON].self) {
            self = .array(elements)
        } else {
            self = .object(try container.decode([String: FreeFormJSON].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .number(let number):
            if number.rounded() == number, abs(number) < 1e15 { try container.encode(Int64(number)) } else { try container.encode(number) }
        case .string(let text): try container.encode(text)
        case .array(let elements): try container.encode(elements)
        case .object(let members): try container.encode(members)
        }
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The value of `key`, matched case-insensitively as Consul's `mapstructure` does (docs/DECISIONS.md D34).
    public func value(forCaseInsensitiveKey key: String) -> FreeFormJSON? {
        guard case .object(let members) = self else { return nil }
        if let exact = members[key] { return exact }
        // Of several spellings (`Arn` and `arn`), the first in code-point order: a dictionary's own
        // order differs between processes, and the same entry must mean the same everywhere.
        let lower = key.lowercased()
        return members.keys.sorted().first { $0.lowercased() == lower }.flatMap { members[$0] }
    }
}

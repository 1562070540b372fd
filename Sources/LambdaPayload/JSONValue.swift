/// A parsed JSON value. Objects keep their members in document order (later duplicates are kept too),
/// and numbers keep their exact text, so a value can be written back without changing it. Not
/// `indirect`: arrays already hold nested values out of line, and a boxed case cost an allocation
/// per value parsed.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number exactly as written (`1`, `-0.5e3`).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// The last member named `key` (JSON parsers keep the last duplicate).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.name == key }?.value
    }

    public var isObject: Bool {
        if case .object = self { return true }
        return false
    }
}

public struct JSONMember: Sendable, Hashable {
    public var name: String
    public var value: JSONValue

    public init(_ name: String, _ value: JSONValue) {
        self.name = name
        self.value = value
    }
}

extension JSONValue {
    /// Compact JSON text.
    public var jsonText: String {
        var writer = JSONWriter()
        writer.write(self)
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}

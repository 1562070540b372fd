/// Go's decoding rules for Consul's JSON (`encoding/json`): a missing field or `null` takes the
/// type's zero value (`""`, `false`, `0`, `[]`, `[:]`). Wrap a model property in `@Zero` to get them.
public protocol ZeroValue: Decodable {
    static var zero: Self { get }
}

extension String: ZeroValue { public static var zero: String { "" } }
extension Bool: ZeroValue { public static var zero: Bool { false } }
extension Int: ZeroValue { public static var zero: Int { 0 } }
extension UInt64: ZeroValue { public static var zero: UInt64 { 0 } }
extension Array: ZeroValue where Element: Decodable { public static var zero: [Element] { [] } }
extension Dictionary: ZeroValue where Key == String, Value: Decodable { public static var zero: [String: Value] { [:] } }

@propertyWrapper
public struct Zero<Value: ZeroValue>: Decodable {
    public var wrappedValue: Value

    public init(wrappedValue: Value) {
        self.wrappedValue = wrappedValue
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? .zero : try container.decode(Value.self)
    }
}

extension KeyedDecodingContainer {
    /// A missing key decodes to the zero value instead of failing.
    public func decode<Value>(_ type: Zero<Value>.Type, forKey key: Key) throws -> Zero<Value> {
        try decodeIfPresent(type, forKey: key) ?? Zero(wrappedValue: .zero)
    }
}

extension Zero: Sendable where Value: Sendable {}
extension Zero: Equatable where Value: Equatable {}
extension Zero: Hashable where Value: Hashable {}

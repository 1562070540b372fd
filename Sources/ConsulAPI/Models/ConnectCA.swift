import struct Foundation.Date

/// `GET /v1/agent/connect/ca/roots` (Consul's Agent API documentation). Every root is a trust anchor.
public struct CARoots: Decodable, Sendable, Hashable {
    @Zero public var ActiveRootID: String
    @Zero public var TrustDomain: String
    @Zero public var Roots: [CARoot]
}

public struct CARoot: Decodable, Sendable, Hashable {
    @Zero public var ID: String
    @Zero public var Name: String
    @Zero public var RootCert: String
    @Zero public var IntermediateCerts: [String]
    @Zero public var Active: Bool
    @Zero public var CreateIndex: UInt64
    @Zero public var ModifyIndex: UInt64
}

/// `GET /v1/agent/connect/ca/leaf/<service>` (Consul's Agent API documentation).
public struct LeafCertificate: Decodable, Sendable, Hashable {
    public var SerialNumber: String
    /// The leaf, possibly followed by intermediates: present the whole chain.
    public var CertPEM: String
    public var PrivateKeyPEM: String
    public var Service: String
    public var ServiceURI: String
    public var ValidAfter: String
    public var ValidBefore: String
    public var Namespace: String
    public var Partition: String
    public var CreateIndex: UInt64
    public var ModifyIndex: UInt64
    /// `ValidAfter`/`ValidBefore` parsed once, when the answer is decoded.
    public let validAfter: Date?
    public let validBefore: Date?

    enum CodingKeys: String, CodingKey {
        case SerialNumber, CertPEM, PrivateKeyPEM, Service, ServiceURI, ValidAfter, ValidBefore, Namespace, Partition, CreateIndex, ModifyIndex
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys) throws -> String { try container.decode(Zero<String>.self, forKey: key).wrappedValue }
        SerialNumber = try text(.SerialNumber)
        CertPEM = try text(.CertPEM)
        PrivateKeyPEM = try text(.PrivateKeyPEM)
        Service = try text(.Service)
        ServiceURI = try text(.ServiceURI)
        ValidAfter = try text(.ValidAfter)
        ValidBefore = try text(.ValidBefore)
        Namespace = try text(.Namespace)
        Partition = try text(.Partition)
        CreateIndex = try container.decode(Zero<UInt64>.self, forKey: .CreateIndex).wrappedValue
        ModifyIndex = try container.decode(Zero<UInt64>.self, forKey: .ModifyIndex).wrappedValue
        validAfter = ConsulTime.parse(ValidAfter)
        validBefore = ConsulTime.parse(ValidBefore)
    }
}

/// RFC 3339 times with optional fractional seconds, as Go writes a `time.Time` in JSON.
public enum ConsulTime {
    public static func parse(_ text: String) -> Date? {
        guard !text.isEmpty else { return nil }
        return try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: text.contains(".")).timeZone(separator: .omitted))
            ?? Date(text, strategy: .iso8601)
    }
}

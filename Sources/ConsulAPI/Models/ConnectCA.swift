import struct Foundation.Date

/// `GET /v1/agent/connect/ca/roots` (consul-api.md §5.1). Every root is a trust anchor.
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

/// `GET /v1/agent/connect/ca/leaf/<service>` (consul-api.md §5.2).
public struct LeafCertificate: Decodable, Sendable, Hashable {
    @Zero public var SerialNumber: String
    /// The leaf, possibly followed by intermediates: present the whole chain.
    @Zero public var CertPEM: String
    @Zero public var PrivateKeyPEM: String
    @Zero public var Service: String
    @Zero public var ServiceURI: String
    @Zero public var ValidAfterText: String
    @Zero public var ValidBeforeText: String
    @Zero public var Namespace: String
    @Zero public var Partition: String
    @Zero public var CreateIndex: UInt64
    @Zero public var ModifyIndex: UInt64

    enum CodingKeys: String, CodingKey {
        case SerialNumber, CertPEM, PrivateKeyPEM, Service, ServiceURI, Namespace, Partition, CreateIndex, ModifyIndex
        case ValidAfterText = "ValidAfter"
        case ValidBeforeText = "ValidBefore"
    }

    public var validAfter: Date? { ConsulTime.parse(ValidAfterText) }
    public var validBefore: Date? { ConsulTime.parse(ValidBeforeText) }
}

/// RFC 3339 times with optional fractional seconds (consul-api.md §2.4).
public enum ConsulTime {
    public static func parse(_ text: String) -> Date? {
        guard !text.isEmpty else { return nil }
        return try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: text.contains(".")).timeZone(separator: .omitted))
            ?? Date(text, strategy: .iso8601)
    }
}

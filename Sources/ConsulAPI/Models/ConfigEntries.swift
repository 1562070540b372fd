/// One `EnvoyExtensions` item (Consul's service-defaults reference; docs/COMPATIBILITY.md, Config entries).
public struct EnvoyExtension: Decodable, Sendable, Hashable {
    @Zero public var Name: String
    @Zero public var Required: Bool
    public var Arguments: FreeFormJSON?
}

/// `service-defaults` (Consul's configuration entry reference).
public struct ServiceDefaults: Decodable, Sendable, Hashable {
    @Zero public var Kind: String
    @Zero public var Name: String
    /// `Protocol` (`http`, `http2`, `grpc`, `tcp`); empty when unset.
    @Zero public var protocolName: String
    @Zero public var Meta: [String: String]
    @Zero public var EnvoyExtensions: [EnvoyExtension]
    @Zero public var Namespace: String
    @Zero public var Partition: String
    @Zero public var CreateIndex: UInt64
    @Zero public var ModifyIndex: UInt64

    enum CodingKeys: String, CodingKey {
        case Kind, Name, Meta, EnvoyExtensions, Namespace, Partition, CreateIndex, ModifyIndex
        case protocolName = "Protocol"
    }
}

/// `service-resolver` (Consul's configuration entry reference): only the request timeout and subset names matter.
public struct ServiceResolver: Decodable, Sendable, Hashable {
    public struct Subset: Decodable, Sendable, Hashable {
        @Zero public var Filter: String
        @Zero public var OnlyPassing: Bool
    }

    @Zero public var Kind: String
    @Zero public var Name: String
    /// Go duration text (`30s`), or nanoseconds from older agents; zero when unset.
    public var RequestTimeout: Duration
    @Zero public var Subsets: [String: Subset]
    public var Redirect: FreeFormJSON?
    @Zero public var CreateIndex: UInt64
    @Zero public var ModifyIndex: UInt64

    enum CodingKeys: String, CodingKey {
        case Kind, Name, RequestTimeout, Subsets, Redirect, CreateIndex, ModifyIndex
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        _Kind = try container.decode(Zero<String>.self, forKey: .Kind)
        _Name = try container.decode(Zero<String>.self, forKey: .Name)
        _Subsets = try container.decode(Zero<[String: Subset]>.self, forKey: .Subsets)
        _CreateIndex = try container.decode(Zero<UInt64>.self, forKey: .CreateIndex)
        _ModifyIndex = try container.decode(Zero<UInt64>.self, forKey: .ModifyIndex)
        Redirect = try container.decodeIfPresent(FreeFormJSON.self, forKey: .Redirect)
        if let nanoseconds = try? container.decodeIfPresent(Int64.self, forKey: .RequestTimeout) {
            RequestTimeout = .nanoseconds(nanoseconds)
        } else if let text = try container.decodeIfPresent(String.self, forKey: .RequestTimeout) {
            do {
                RequestTimeout = try GoDuration.parse(text)
            } catch {
                throw DecodingError.dataCorruptedError(forKey: .RequestTimeout, in: container, debugDescription: error.description)
            }
        } else {
            RequestTimeout = .zero
        }
    }
}

/// `proxy-defaults/global` (Consul's configuration entry reference).
public struct ProxyDefaults: Decodable, Sendable, Hashable {
    @Zero public var Kind: String
    @Zero public var Name: String
    public var Config: FreeFormJSON?
    @Zero public var EnvoyExtensions: [EnvoyExtension]
    /// The access log Consul configures on every proxy (docs/COMPATIBILITY.md, `AccessLogs`).
    public var AccessLogs: AccessLogsConfig?

    /// `Config.protocol`, lower-cased key as Consul writes it.
    public var `protocol`: String? { Config?.value(forCaseInsensitiveKey: "protocol")?.stringValue }
}

/// `AccessLogs` of `proxy-defaults` (docs/COMPATIBILITY.md, `AccessLogs`), as Consul stores it.
public struct AccessLogsConfig: Decodable, Sendable, Hashable {
    @Zero public var Enabled: Bool
    @Zero public var DisableListenerLogs: Bool
    /// `""`/`stdout`, `stderr` or `file`.
    @Zero public var `Type`: String
    @Zero public var Path: String
    @Zero public var JSONFormat: String
    @Zero public var TextFormat: String

    public init(Enabled: Bool = false, DisableListenerLogs: Bool = false, Type: String = "", Path: String = "", JSONFormat: String = "", TextFormat: String = "") {
        self.Enabled = Enabled
        self.DisableListenerLogs = DisableListenerLogs
        self.Type = Type
        self.Path = Path
        self.JSONFormat = JSONFormat
        self.TextFormat = TextFormat
    }
}

/// `mesh/mesh` (Consul's configuration entry reference).
public struct MeshConfig: Decodable, Sendable, Hashable {
    public struct TLSConfig: Decodable, Sendable, Hashable {
        public struct Incoming: Decodable, Sendable, Hashable {
            @Zero public var TLSMinVersion: String
            @Zero public var TLSMaxVersion: String
            @Zero public var CipherSuites: [String]
        }

        public var Incoming: Incoming?
    }

    public struct HTTPConfig: Decodable, Sendable, Hashable {
        @Zero public var SanitizeXForwardedClientCert: Bool
    }

    @Zero public var Kind: String
    public var TLS: TLSConfig?
    public var HTTP: HTTPConfig?
}

/// A Consul service identity: `spiffe://<td>[/ap/<partition>]/ns/<ns>/dc/<dc>/svc/<service>`
/// (as Consul's `agent/connect/uri_service.go` writes it).
public struct SPIFFEID: Sendable, Hashable, CustomStringConvertible {
    public var trustDomain: String
    public var partition: String
    public var namespace: String
    public var datacenter: String
    public var service: String

    public init(trustDomain: String, partition: String = "default", namespace: String = "default", datacenter: String, service: String) {
        self.trustDomain = trustDomain
        self.partition = partition
        self.namespace = namespace
        self.datacenter = datacenter
        self.service = service
    }

    /// Parses a service ID; `nil` for anything else (agent, server, mesh gateway and CA IDs, extra or
    /// empty segments). Segments are percent-decoded once.
    public init?(parsing uri: String) {
        guard uri.hasPrefix("spiffe://") else { return nil }
        // Split on the byte '/', not the Character: a decoded segment that starts with a combining
        // mark (`svc/%CC%93...`) forms one Character with the '/' before it in the printed form, which
        // then split differently from the ID it printed (found by FuzzSPIFFE).
        let parts = uri.utf8.dropFirst("spiffe://".utf8.count).split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        guard let trustDomain = parts.first, !trustDomain.isEmpty else { return nil }
        var rest = Array(parts.dropFirst())
        var partition = "default"
        if rest.count == 8, rest[0] == "ap" {
            partition = rest[1]
            rest.removeFirst(2)
        }
        guard rest.count == 6, rest[0] == "ns", rest[2] == "dc", rest[4] == "svc" else { return nil }
        let decoded = [partition, rest[1], rest[3], rest[5]].map(Self.percentDecode)
        guard decoded.allSatisfy({ $0 != nil && !$0!.isEmpty }) else { return nil }
        self.init(trustDomain: trustDomain, partition: decoded[0]!, namespace: decoded[1]!, datacenter: decoded[2]!, service: decoded[3]!)
    }

    public var description: String {
        let prefix = partition == "default" || partition.isEmpty ? "" : "/ap/\(partition)"
        return "spiffe://\(trustDomain)\(prefix)/ns/\(namespace)/dc/\(datacenter)/svc/\(service)"
    }

    /// Trust domains compare ASCII case-insensitively.
    public func isInTrustDomain(_ other: String) -> Bool {
        // ASCII case only, as DNS names compare: Unicode's would take the Kelvin sign for `k`.
        trustDomain.asciiLowercased.bytesEqual(other.asciiLowercased)
    }

    static func percentDecode(_ text: String) -> String? {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// Consul's `ServiceSNI` (`agent/connect/sni.go`), lower-cased as the gateway compares SNIs.
public enum ServiceSNI {
    public static func make(
        service: String,
        subset: String? = nil,
        namespace: String = "default",
        partition: String = "default",
        datacenter: String,
        trustDomain: String
    ) -> String {
        let subsetPrefix = subset.map { "\($0)." } ?? ""
        let namespace = namespace.isEmpty ? "default" : namespace
        if partition.isEmpty || partition == "default" {
            return "\(subsetPrefix)\(service).\(namespace).\(datacenter).internal.\(trustDomain)".asciiLowercased
        }
        return "\(subsetPrefix)\(service).\(namespace).\(partition).\(datacenter).internal-v1.\(trustDomain)".asciiLowercased
    }

    /// The form SNIs are compared in: lower-case, one trailing dot removed (docs/COMPATIBILITY.md, SNIs and certificates).
    public static func normalize(_ sni: String) -> String {
        // ASCII case folding, as TLS and DNS compare names: Unicode's would map `\u{212A}` (Kelvin)
        // onto `k` and let an SNI no peer would match select a service.
        var key = sni.asciiLowercased
        if key.hasSuffix(".") { key.removeLast() }
        return key
    }
}

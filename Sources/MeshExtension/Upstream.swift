import Foundation
import MeshIdentity

/// One upstream of `CONSUL_SERVICE_UPSTREAMS`: `name[.namespace[.partition]]:port[:datacenter]`
/// (docs/COMPATIBILITY.md, The extension), a local port tunnelled to that mesh service.
public struct Upstream: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var namespace: String
    public var partition: String
    public var localPort: Int
    public var datacenter: String

    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public var input: String
        public var reason: String
        public var description: String { "\(reason): \"\(input)\"" }

        public init(input: String, reason: String) {
            self.input = input
            self.reason = reason
        }
    }

    /// `defaultDatacenter`: `CONSUL_DATACENTER`.
    public init(parsing text: String, defaultDatacenter: String) throws(ParseError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.count <= 3 else { throw ParseError(input: text, reason: "invalid service format") }
        guard let port = Int(parts[1]), (1...65535).contains(port) else { throw ParseError(input: text, reason: "invalid service port") }
        let names = parts[0].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(names.count), names.allSatisfy(Self.isLabel) else {
            throw ParseError(input: text, reason: "invalid service format")
        }
        let datacenter = parts.count == 3 ? String(parts[2]) : defaultDatacenter
        guard Self.isLabel(datacenter) else { throw ParseError(input: text, reason: "invalid service datacenter") }
        name = names[0]
        namespace = names.count > 1 ? names[1] : "default"
        partition = names.count > 2 ? names[2] : "default"
        localPort = port
        self.datacenter = datacenter
    }

    /// Names that can sit in an SNI and a SPIFFE ID: letters, digits, `-` and `_`.
    static func isLabel(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.count <= 128
            && text.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
    }

    /// The SNI the mesh gateway routes by (Consul's `ServiceSNI`; docs/COMPATIBILITY.md, SNIs and certificates).
    public func sni(trustDomain: String) -> String {
        ServiceSNI.make(service: name, namespace: namespace, partition: partition, datacenter: datacenter, trustDomain: trustDomain)
    }

    /// The identity the peer's leaf must carry (docs/DECISIONS.md D62).
    public func spiffeID(trustDomain: String) -> SPIFFEID {
        SPIFFEID(trustDomain: trustDomain, partition: partition, namespace: namespace, datacenter: datacenter, service: name)
    }

    public var description: String {
        let scope = partition == "default" ? (namespace == "default" ? "" : ".\(namespace)") : ".\(namespace).\(partition)"
        return "\(name)\(scope):\(localPort):\(datacenter)"
    }

    /// Every upstream of the variable's value (comma-separated, blanks ignored); duplicate local
    /// ports are an error (two listeners cannot share one).
    public static func parseList(_ text: String, defaultDatacenter: String) throws(ParseError) -> [Upstream] {
        var upstreams: [Upstream] = []
        var ports: [Int: String] = [:]
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let upstream = try Upstream(parsing: item, defaultDatacenter: defaultDatacenter)
            if let other = ports[upstream.localPort] {
                throw ParseError(input: item, reason: "local port \(upstream.localPort) is also used by \(other)")
            }
            ports[upstream.localPort] = item
            upstreams.append(upstream)
        }
        return upstreams
    }
}

/// Where and how to reach the Consul agent, read from the same `CONSUL_*` variables as Consul's Go
/// client (docs/COMPATIBILITY.md, The Consul agent and the gateway's registration). Flags override variables by being passed in `overrides`.
public struct ConsulConfiguration: Sendable, Hashable {
    public enum Transport: Sendable, Hashable {
        case http
        case https
        /// HTTP over a Unix socket (`unix:///path`), `Host: localhost`.
        case unixSocket(path: String)
    }

    public enum Token: Sendable, Hashable {
        case none
        case value(String)
        /// Read from the file (trimmed), re-read every 60 s and after `ACL not found`.
        case file(String)
    }

    public var transport: Transport
    /// Host without brackets for IPv6; `localhost` for a Unix socket.
    public var host: String
    public var port: Int
    /// Put in front of every `/v1/...` path (`https://c.example:8501/consul` → `/consul`).
    public var pathPrefix: String
    public var token: Token
    public var basicAuth: String?
    public var caFile: String?
    public var caPath: String?
    public var clientCertificate: String?
    public var clientKey: String?
    public var tlsServerName: String?
    public var verifyTLS: Bool
    public var namespace: String?
    public var partition: String?
    /// The most connections open to the agent at once (docs/DECISIONS.md D35): whatever the
    /// number of linked services, far below the agent's per-client limit (200 by default).
    public var maximumConnections = Self.defaultMaximumConnections

    public static let defaultMaximumConnections = 16
    /// Past this the gateway would crowd out the agent's other clients on the same host.
    public static let maximumConnectionsLimit = 64

    public struct Error: Swift.Error, Hashable, CustomStringConvertible {
        public var variable: String
        public var message: String
        public var description: String { "\(variable): \(message)" }
    }

    /// Reads the variables; `overrides` (flag values) win over the environment, key by key.
    public init(environment: [String: String], overrides: [String: String] = [:]) throws(Error) {
        func value(_ name: String) -> String? {
            let raw = overrides[name] ?? environment[name]
            guard let raw, !raw.isEmpty else { return nil }
            return raw
        }
        func bool(_ name: String) throws(Error) -> Bool? {
            guard let text = value(name) else { return nil }
            guard let parsed = Self.parseGoBool(text) else {
                throw Error(variable: name, message: "\"\(text)\" is not a boolean (1, t, true, 0, f, false)")
            }
            return parsed
        }

        let forceSSL = try bool("CONSUL_HTTP_SSL") ?? false
        let address = try Self.parseAddress(value("CONSUL_HTTP_ADDR") ?? "127.0.0.1:8500", forceSSL: forceSSL)
        transport = address.transport
        host = address.host
        port = address.port
        pathPrefix = address.pathPrefix

        if let file = value("CONSUL_HTTP_TOKEN_FILE") {
            token = .file(file)
        } else if let literal = value("CONSUL_HTTP_TOKEN") {
            token = .value(literal)
        } else {
            token = .none
        }
        basicAuth = value("CONSUL_HTTP_AUTH")
        caFile = value("CONSUL_CACERT")
        caPath = value("CONSUL_CAPATH")
        clientCertificate = value("CONSUL_CLIENT_CERT")
        clientKey = value("CONSUL_CLIENT_KEY")
        if (clientCertificate == nil) != (clientKey == nil) {
            throw Error(
                variable: clientCertificate == nil ? "CONSUL_CLIENT_CERT" : "CONSUL_CLIENT_KEY",
                message: "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together"
            )
        }
        tlsServerName = value("CONSUL_TLS_SERVER_NAME")
        verifyTLS = try bool("CONSUL_HTTP_SSL_VERIFY") ?? true
        namespace = value("CONSUL_NAMESPACE")
        partition = value("CONSUL_PARTITION")
    }

    /// The URL prefix requests are built on: `http://127.0.0.1:8500`, `https://c.example:8501/consul`,
    /// or `http+unix://<percent-encoded socket path>` (AsyncHTTPClient's form).
    public var baseURL: String {
        switch transport {
        case .http, .https:
            let scheme = transport == .https ? "https" : "http"
            let hostPart = host.contains(":") ? "[\(host)]" : host
            return "\(scheme)://\(hostPart):\(port)\(pathPrefix)"
        case .unixSocket(let path):
            let encoded = path.addingPercentEncodingForSocket()
            return "http+unix://\(encoded)\(pathPrefix)"
        }
    }

    // MARK: Parsing

    /// Go's `strconv.ParseBool`.
    static func parseGoBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": true
        case "0", "f", "F", "FALSE", "false", "False": false
        default: nil
        }
    }

    static func parseAddress(_ address: String, forceSSL: Bool) throws(Error) -> (transport: Transport, host: String, port: Int, pathPrefix: String) {
        func fail(_ message: String) -> Error { Error(variable: "CONSUL_HTTP_ADDR", message: "\"\(address)\" \(message)") }
        var rest = Substring(address)
        var transport: Transport = forceSSL ? .https : .http
        if rest.hasPrefix("unix://") {
            let path = String(rest.dropFirst("unix://".count))
            guard path.hasPrefix("/") else { throw fail("must name an absolute socket path") }
            return (.unixSocket(path: path), "localhost", 80, "")
        } else if rest.lowercased().hasPrefix("https://") {
            transport = .https
            rest = rest.dropFirst("https://".count)
        } else if rest.lowercased().hasPrefix("http://") {
            transport = .http
            rest = rest.dropFirst("http://".count)
        } else if rest.contains("://") {
            throw fail("has an unknown scheme (use http://, https:// or unix://)")
        }
        var prefix = ""
        if let slash = rest.firstIndex(of: "/") {
            prefix = String(rest[slash...])
            rest = rest[..<slash]
            while prefix.hasSuffix("/") { prefix.removeLast() }
        }
        var host = String(rest)
        var port = transport == .https ? 443 : 80
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("has an unclosed IPv6 bracket") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let parsed = Int(after.dropFirst()), (1...65535).contains(parsed) else { throw fail("has an invalid port") }
                port = parsed
            } else if !after.isEmpty {
                throw fail("is not host:port")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let parsed = Int(rest[rest.index(after: colon)...]), (1...65535).contains(parsed) else { throw fail("has an invalid port") }
            port = parsed
        }
        guard !host.isEmpty else { throw fail("has no host") }
        return (transport, host, port, prefix)
    }
}

extension String {
    /// Percent-encodes a socket path for AsyncHTTPClient's `http+unix://` host part.
    fileprivate func addingPercentEncodingForSocket() -> String {
        var out = ""
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}

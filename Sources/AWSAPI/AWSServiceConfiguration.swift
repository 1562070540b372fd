/// Endpoints, region and retry settings of the AWS control-plane clients, resolved as the AWS SDKs do
/// (AWS SDKs and Tools Reference Guide; docs/COMPATIBILITY.md, Environment).
public struct AWSServiceConfiguration: Sendable {
    /// `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    public var region: String
    /// `scheme://host[:port]`: `AWS_ENDPOINT_URL_LAMBDA`, else `AWS_ENDPOINT_URL`, else the region's host.
    public var lambdaEndpoint: String
    /// `scheme://host[:port]`: `AWS_ENDPOINT_URL_SSM`, else `AWS_ENDPOINT_URL`, else the region's host.
    public var ssmEndpoint: String
    /// `AWS_CA_BUNDLE`: extra trust anchors (PEM or DER) beside the system roots.
    public var caFile: String?
    /// Attempts per call, the first included (the AWS SDKs' standard and adaptive modes: 3).
    public var maximumAttempts: Int = 3
    /// The longest wait between two attempts (the reference registrator's SDK setting: 3 s).
    public var maximumBackoff: Duration = .seconds(3)
    /// Covers one call: credentials, every attempt and the waits between them.
    public var callTimeout: Duration = .seconds(30)
    /// Pooled keep-alive connections per endpoint; the registrator's `MAX_CONCURRENCY` is 8.
    public var maximumConnectionsPerHost: Int = 16
    public var connectTimeout: Duration = .seconds(5)
    public var userAgent: String = "lambda-gateway/0.1"

    /// Explicit values; a nil endpoint is the region's AWS host.
    public init(region: String, lambdaEndpoint: String? = nil, ssmEndpoint: String? = nil, caFile: String? = nil) throws(AWSAPIError) {
        try Self.checkRegion(region, setting: "region")
        self.region = region
        self.lambdaEndpoint =
            try lambdaEndpoint.map { url throws(AWSAPIError) in try ServiceEndpoint(url, setting: "Lambda endpoint URL").baseURL }
            ?? Self.defaultEndpoint(service: "lambda", region: region)
        self.ssmEndpoint =
            try ssmEndpoint.map { url throws(AWSAPIError) in try ServiceEndpoint(url, setting: "SSM endpoint URL").baseURL }
            ?? Self.defaultEndpoint(service: "ssm", region: region)
        self.caFile = caFile
    }

    /// From the process environment's variables (empty values count as unset, as in the SDKs).
    /// `http://` endpoints are accepted, for local endpoints such as moto's server.
    public init(environment: [String: String]) throws(AWSAPIError) {
        func value(_ name: String) -> String? {
            environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        guard let regionVariable = ["AWS_REGION", "AWS_DEFAULT_REGION"].first(where: { value($0) != nil }), let region = value(regionVariable) else {
            throw AWSAPIError(.invalidRequest, "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")
        }
        try Self.checkRegion(region, setting: regionVariable)
        func endpoint(_ service: String, variable: String) throws(AWSAPIError) -> String {
            for name in [variable, "AWS_ENDPOINT_URL"] {
                if let url = value(name) { return try ServiceEndpoint(url, setting: name).baseURL }
            }
            return Self.defaultEndpoint(service: service, region: region)
        }
        self.region = region
        self.lambdaEndpoint = try endpoint("lambda", variable: "AWS_ENDPOINT_URL_LAMBDA")
        self.ssmEndpoint = try endpoint("ssm", variable: "AWS_ENDPOINT_URL_SSM")
        self.caFile = value("AWS_CA_BUNDLE")
    }

    /// `https://<service>.<region>.amazonaws.com`, `.amazonaws.com.cn` in the China regions.
    static func defaultEndpoint(service: String, region: String) -> String {
        "https://\(service).\(region).amazonaws.com\(region.hasPrefix("cn-") ? ".cn" : "")"
    }

    /// The region becomes part of a host name and of the signing scope: letters, digits, dashes.
    static func checkRegion(_ region: String, setting: String) throws(AWSAPIError) {
        let allowed = region.utf8.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-") }
        guard allowed, !region.isEmpty, !region.hasPrefix("-"), !region.hasSuffix("-") else {
            throw AWSAPIError(.invalidRequest, "\(setting) \"\(region)\" is not an AWS region (such as us-east-1)")
        }
    }
}

/// An endpoint URL taken apart: where to connect, and the `Host` header that is signed.
struct ServiceEndpoint: Sendable, Hashable {
    /// `scheme://authority`, without a trailing slash.
    var baseURL: String
    /// The authority as written (`host[:port]`): the `Host` header.
    var host: String

    /// `setting` names where the URL came from, in errors.
    init(_ url: String, setting: String) throws(AWSAPIError) {
        func refuse(_ problem: String) -> AWSAPIError {
            AWSAPIError(.invalidRequest, "\(setting) \"\(url)\" \(problem)")
        }
        guard let schemeEnd = url.range(of: "://") else { throw refuse("has no scheme; use https://host[:port]") }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "https" || scheme == "http" else {
            throw refuse("must be https:// (or http:// for a local endpoint)")
        }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { "/?#".contains($0) }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        // A path prefix (allowed by some SDKs) is not supported: the paths of the APIs are absolute.
        guard rest[authorityEnd...].isEmpty || rest[authorityEnd...] == "/" else {
            throw refuse("has a path, query or fragment; use \(scheme)://host[:port]")
        }
        guard !authority.contains("@"), !authority.contains(where: \.isWhitespace) else {
            throw refuse("must be \(scheme)://host[:port], without user information or spaces")
        }
        var hostPart = authority
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw refuse("has an unclosed IPv6 address") }
            hostPart = authority[authority.startIndex...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw refuse("has text after its IPv6 address") }
                portPart = after.dropFirst()
            }
        } else if let colon = authority.firstIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty, hostPart != "[]" else { throw refuse("has no host") }
        if let portPart {
            guard portPart.allSatisfy({ ("0"..."9").contains($0) }), let port = Int(portPart), (1...65535).contains(port) else {
                throw refuse("has an invalid port")
            }
        }
        self.baseURL = "\(scheme)://\(authority)"
        self.host = String(authority)
    }
}

/// Where Invoke calls go (docs/DECISIONS.md D5): the partition's host for the ARN's region, or one
/// custom URL for every function.
public struct LambdaEndpointResolver: Sendable, Hashable {
    public enum Variant: Sendable, Hashable {
        case standard
        case fips
        case dualStack
        case fipsDualStack
    }

    /// `https://host[:port]`, or `http://host:port` for tests; wins over `variant`.
    public var customEndpoint: String?
    public var variant: Variant

    /// `customEndpoint` checked once: the endpoint every call goes to, or why none can.
    private let custom: Result<Endpoint, ResolutionError>?

    public init(customEndpoint: String? = nil, variant: Variant = .standard) {
        let customEndpoint = customEndpoint.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.customEndpoint = customEndpoint
        self.variant = variant
        self.custom = customEndpoint.map { url in Result { () throws(ResolutionError) in try Self.parse(customEndpoint: url) } }
    }

    /// Reads `AWS_ENDPOINT_URL_LAMBDA`, `AWS_ENDPOINT_URL`, `AWS_USE_FIPS_ENDPOINT` and
    /// `AWS_USE_DUALSTACK_ENDPOINT`; an explicit `customEndpoint` wins over the variables.
    public init(environment: [String: String], customEndpoint: String? = nil, fips: Bool = false, dualStack: Bool = false) {
        let override =
            customEndpoint
            ?? environment["AWS_ENDPOINT_URL_LAMBDA"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_ENDPOINT_URL"].flatMap { $0.isEmpty ? nil : $0 }
        let useFIPS = fips || environment["AWS_USE_FIPS_ENDPOINT"]?.lowercased() == "true"
        let useDualStack = dualStack || environment["AWS_USE_DUALSTACK_ENDPOINT"]?.lowercased() == "true"
        let variant: Variant =
            switch (useFIPS, useDualStack) {
            case (true, true): .fipsDualStack
            case (true, false): .fips
            case (false, true): .dualStack
            case (false, false): .standard
            }
        self.init(customEndpoint: override, variant: variant)
    }

    public struct Endpoint: Sendable, Hashable {
        /// `https://lambda.us-east-1.amazonaws.com` or the custom URL.
        public var baseURL: String
        /// The `Host` header value: the host without port for AWS, `host[:port]` as written for a custom URL.
        public var host: String
        public var region: String

        /// `host:port` of the endpoint (the port the URL implies when it names none).
        public var authority: String {
            // `host` is `host[:port]` as written for a custom URL, the bare host for AWS (https).
            if host.hasPrefix("[") ? host.contains("]:") : host.utf8.contains(UInt8(ascii: ":")) { return host }
            return host + (baseURL.hasPrefix("http://") ? ":80" : ":443")
        }
    }

    public struct ResolutionError: Error, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public func endpoint(for arn: FunctionARN) throws(ResolutionError) -> Endpoint {
        if let custom {
            var endpoint = try custom.get()
            endpoint.region = arn.region
            return endpoint
        }
        let host = try Self.host(partition: arn.partition, region: arn.region, variant: variant)
        return Endpoint(baseURL: "https://\(host)", host: host, region: arn.region)
    }

    /// `scheme://authority` of a custom endpoint URL; the region is the function's.
    static func parse(customEndpoint: String) throws(ResolutionError) -> Endpoint {
        guard let schemeEnd = customEndpoint.range(of: "://") else {
            throw ResolutionError(message: "endpoint URL \"\(customEndpoint)\" has no scheme")
        }
        let scheme = customEndpoint[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "https" || scheme == "http" else {
            throw ResolutionError(message: "endpoint URL \"\(customEndpoint)\" must be https:// (or http:// for tests)")
        }
        let authority = customEndpoint[schemeEnd.upperBound...].split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        guard !authority.isEmpty else { throw ResolutionError(message: "endpoint URL \"\(customEndpoint)\" has no host") }
        return Endpoint(baseURL: "\(scheme)://\(authority)", host: authority, region: "")
    }

    static func host(partition: String, region: String, variant: Variant) throws(ResolutionError) -> String {
        func unsupported() -> ResolutionError {
            ResolutionError(message: "partition \(partition) has no \(variant) Lambda endpoint for \(region); set an endpoint URL")
        }
        switch (partition, variant) {
        case ("aws", .standard), ("aws-us-gov", .standard): return "lambda.\(region).amazonaws.com"
        case ("aws", .fips), ("aws-us-gov", .fips): return "lambda-fips.\(region).amazonaws.com"
        case ("aws", .dualStack), ("aws-us-gov", .dualStack): return "lambda.\(region).api.aws"
        case ("aws", .fipsDualStack), ("aws-us-gov", .fipsDualStack): return "lambda-fips.\(region).api.aws"
        case ("aws-cn", .standard): return "lambda.\(region).amazonaws.com.cn"
        case ("aws-cn", .dualStack): return "lambda.\(region).api.amazonwebservices.com.cn"
        case ("aws-iso", .standard): return "lambda.\(region).c2s.ic.gov"
        case ("aws-iso-b", .standard): return "lambda.\(region).sc2s.sgov.gov"
        default: throw unsupported()
        }
    }
}

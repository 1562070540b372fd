import AsyncHTTPClient
import Foundation
import LambdaPayload
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import TLSFiles

/// The Consul agent's HTTP API (docs/COMPATIBILITY.md, The Consul agent and the gateway's registration): token, TLS, query metadata, typed errors.
///
/// Over HTTPS the client speaks HTTP/2, so every long poll shares one connection (docs/DECISIONS.md D35); over plain
/// HTTP it opens at most `configuration.maximumConnections`.
public final class ConsulClient: Sendable {
    public let configuration: ConsulConfiguration
    let http: HTTPClient
    let token: ConsulTokenSource
    let logger: Logger
    static let userAgent = "lambda-gateway/0.1"

    public init(configuration: ConsulConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        // Every file is read here, by its content (PEM or DER whatever its name), so one that
        // cannot be used stops the start with its variable named instead of failing every watch.
        if let caFile = configuration.caFile {
            tls.trustRoots = .certificates(try TLSFile(setting: "CONSUL_CACERT", path: caFile).certificates())
        }
        if let caPath = configuration.caPath {
            tls.additionalTrustRoots = [.certificates(try Self.certificates(inDirectory: caPath))]
        }
        if let certificate = configuration.clientCertificate, let key = configuration.clientKey {
            tls.certificateChain = try TLSFile(setting: "CONSUL_CLIENT_CERT", path: certificate).certificates().map { .certificate($0) }
            tls.privateKey = .privateKey(try TLSFile(setting: "CONSUL_CLIENT_KEY", path: key).privateKey())
        }
        if !configuration.verifyTLS {
            tls.certificateVerification = .none
            logger.warning("CONSUL_HTTP_SSL_VERIFY is off: the Consul agent's certificate is not verified")
        }
        var http = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5)),
            // The connection budget (docs/DECISIONS.md D35): plain HTTP/1.1 holds one connection per
            // outstanding request, and the pool never opens more than the budget (its limit is only
            // "soft" for requests pinned to an event loop, which are never made here); requests
            // over it queue. The callers keep their long polls well under the budget (4 global, 4
            // per scope) and read leaves without blocking, so a queued request waits milliseconds.
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maximumConnections),
            decompression: .disabled
        )
        http.httpVersion = .automatic
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .info)
        self.http = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: http, backgroundActivityLogger: quiet)
        self.configuration = configuration
        self.token = ConsulTokenSource(configuration.token)
        self.logger = logger
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// The token file was rewritten: read it again on the next request.
    public func tokenChanged() {
        token.invalidate()
    }

    /// Every certificate of every file in `CONSUL_CAPATH` (hidden files and folders aside), as
    /// Consul loads the folder: each file must hold certificates.
    static func certificates(inDirectory path: String) throws(TLSFileError) -> [NIOSSLCertificate] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw TLSFileError(.unreadable, setting: "CONSUL_CAPATH", path: path, "is not a readable folder")
        }
        var certificates: [NIOSSLCertificate] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let file = URL(fileURLWithPath: path).appendingPathComponent(name).path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            certificates += try TLSFile(setting: "CONSUL_CAPATH", path: file).certificates()
        }
        return certificates
    }

    public struct Response: Sendable {
        public var status: Int
        public var metadata: ConsulMetadata
        public var body: ByteBuffer
    }

    /// Sends one request. Non-2xx answers are errors, except 404 when `allowNotFound` (config entries).
    /// `scope` is the partition and namespace of a linked service the request is about; without it
    /// the configured `CONSUL_NAMESPACE`/`CONSUL_PARTITION` apply.
    public func send(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String)] = [],
        scope: ConsulScope? = nil,
        body: ByteBuffer? = nil,
        timeout: Duration = .seconds(30),
        allowNotFound: Bool = false
    ) async throws(ConsulError) -> Response {
        var items = query
        items += scopeQuery(scope)
        let queryText = items.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        let endpoint = queryText.isEmpty ? path : "\(path)?\(queryText)"
        var request = HTTPClientRequest(url: configuration.baseURL + endpoint)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        if case .unixSocket = configuration.transport {
            request.headers.add(name: "Host", value: "localhost")
        }
        let sentToken = token.current
        if let sentToken {
            request.headers.add(name: "X-Consul-Token", value: sentToken)
        }
        if let auth = configuration.basicAuth {
            request.headers.add(name: "Authorization", value: "Basic " + Data(auth.utf8).base64EncodedString())
        }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }

        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: TimeAmount(timeout), logger: logger)
            bytes = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw ConsulError(.transport, endpoint: endpoint, "\(method) failed: \(error)")
        }
        let status = Int(response.status.code)
        let metadata = ConsulMetadata(
            index: response.headers.first(name: "X-Consul-Index").flatMap { UInt64($0) },
            defaultACLPolicy: response.headers.first(name: "X-Consul-Default-ACL-Policy"),
            filteredByACLs: response.headers.first(name: "X-Consul-Results-Filtered-By-ACLs") == "true",
            anonymous: sentToken?.isEmpty ?? true
        )
        if (200..<300).contains(status) || (status == 404 && allowNotFound) {
            return Response(status: status, metadata: metadata, body: bytes)
        }
        let error = ConsulError(
            .status(status),
            endpoint: endpoint,
            "Consul answered \(status): \(String(buffer: bytes).prefix(300).trimmingCharacters(in: .whitespacesAndNewlines))",
            // Seconds, finite and not negative (`nan` or `-inf` would trap the conversion), at most an hour.
            retryAfter: response.headers.first(name: "Retry-After").flatMap { Double($0) }.flatMap { $0.isFinite && $0 >= 0 ? .seconds(min($0, 3600)) : nil }
        )
        if error.isUnknownToken { token.invalidate() }
        throw error
    }

    /// `ns` and `partition` (Consul's HTTP API query parameters): only when not `default`, since a CE
    /// agent answers 400 to any other value. A linked service's own scope says `default` outright
    /// when the configured one is not, so it never inherits the gateway's namespace.
    func scopeQuery(_ scope: ConsulScope?) -> [(String, String)] {
        let configured = ConsulScope(partition: configuration.partition ?? "", namespace: configuration.namespace ?? "")
        var items: [(String, String)] = []
        let target = scope ?? configured
        if target.namespace != "default" || configured.namespace != "default" { items.append(("ns", target.namespace)) }
        if target.partition != "default" || configured.partition != "default" { items.append(("partition", target.partition)) }
        return items
    }

    /// GET and decode JSON.
    public func get<Value: Decodable>(
        _ type: Value.Type,
        _ path: String,
        query: [(String, String)] = [],
        timeout: Duration = .seconds(30)
    ) async throws(ConsulError) -> (Value, ConsulMetadata) {
        let response = try await send(.GET, path, query: query, timeout: timeout)
        return (try Self.decode(type, response.body, endpoint: path), response.metadata)
    }

    public static func decode<Value: Decodable>(_ type: Value.Type, _ body: ByteBuffer, endpoint: String) throws(ConsulError) -> Value {
        // The list watches' models: the project's parser, several times faster (FastDecoding.swift).
        if let fast = type as? any FastConsulDecodable.Type {
            do {
                let value = try body.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
                return try fast.init(consulJSON: value) as! Value
            } catch let error as JSONParser.Error {
                throw ConsulError(.malformedBody, endpoint: endpoint, "answer is not JSON: \(error)")
            } catch {
                throw ConsulError(.malformedBody, endpoint: endpoint, "answer is not the documented JSON: \(error)")
            }
        }
        do {
            return try JSONDecoder().decode(type, from: Data(body.readableBytesView))
        } catch {
            throw ConsulError(.malformedBody, endpoint: endpoint, "answer is not the documented JSON: \(error)")
        }
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryValueAllowed) ?? text
    }
}

extension CharacterSet {
    /// ASCII letters and digits and `-._~/:*`; everything else is percent-encoded.
    static let urlQueryValueAllowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/:*")
}

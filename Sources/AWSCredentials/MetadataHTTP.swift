import AWSSigV4
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The small HTTP exchanges of the STS, container and IMDS providers, with their own timeouts.
struct MetadataHTTP: Sendable {
    let client: HTTPClient
    let provider: String

    struct Response {
        var status: Int
        var body: ByteBuffer
        var text: String { String(buffer: body) }
    }

    /// Metadata answers are small; anything larger is not a credentials document.
    static let maximumBody = 1 << 20

    func send(
        _ method: HTTPMethod,
        _ url: String,
        headers: [(String, String)] = [],
        timeout: Duration
    ) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .nanoseconds(Int64(timeout.nanoseconds)))
        } catch {
            throw CredentialsError(.providerFailed, provider: provider, "\(method) \(url) failed: \(error)")
        }
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: Self.maximumBody)
        } catch {
            throw CredentialsError(.providerFailed, provider: provider, "\(method) \(url): reading the answer failed: \(error)")
        }
        return Response(status: Int(response.status.code), body: body)
    }

    /// Decodes a JSON answer, naming the URL when it is not what was expected.
    func decode<T: Decodable>(_ type: T.Type, from response: Response, url: String) throws -> T {
        guard (200..<300).contains(response.status) else {
            throw CredentialsError(.providerFailed, provider: provider, "\(url) answered \(response.status): \(response.text.prefix(200))")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(response.body.readableBytesView))
        } catch {
            throw CredentialsError(.providerFailed, provider: provider, "\(url) answered malformed JSON: \(error)")
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// An `Expiration` as the AWS endpoints write it: RFC 3339 text (container, IMDS) or epoch seconds (STS JSON).
struct ExpirationDate: Decodable {
    let date: Date

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Double.self) {
            date = Date(timeIntervalSince1970: seconds)
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = Self.parse(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "Expiration \"\(text)\" is not an RFC 3339 date")
        }
        date = parsed
    }

    static func parse(_ text: String) -> Date? {
        if let seconds = Double(text) { return Date(timeIntervalSince1970: seconds) }
        let plain = ISO8601DateFormatter()
        if let date = plain.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
    }
}

/// The credentials document of the container endpoint and of IMDS:
/// `{Code?, AccessKeyId, SecretAccessKey, Token, Expiration}`.
struct MetadataCredentialsDocument: Decodable {
    var Code: String?
    var AccessKeyId: String
    var SecretAccessKey: String
    var Token: String?
    var Expiration: ExpirationDate?

    var credentials: Credentials {
        Credentials(accessKeyID: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: Token, expiration: Expiration?.date)
    }
}

/// The HTTP client the credential providers use: short connect timeout (IMDS answers at once or
/// not at all), no redirects, no proxy.
public enum MetadataHTTPClient {
    public static func make(eventLoopGroup: any EventLoopGroup) -> HTTPClient {
        HTTPClient(
            eventLoopGroupProvider: .shared(eventLoopGroup),
            configuration: HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .seconds(1), read: .seconds(10))
            )
        )
    }
}

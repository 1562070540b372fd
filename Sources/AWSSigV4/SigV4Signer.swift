import Crypto
import struct Foundation.Date

/// One header of a request to sign. Names are compared case-insensitively.
public struct SigV4Header: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// What SigV4 looks at in a request. The path and query are taken exactly as they go on the wire.
public struct SigV4Request: Sendable {
    public var method: String
    /// The request path as sent, already percent-encoded where the sender encodes (e.g. `arn%3Aaws…`).
    public var path: String
    /// The raw query string as sent, without the leading `?`; empty when there is none.
    public var query: String
    /// The headers to sign. Do not include `x-amz-date`, `x-amz-security-token` or `authorization`:
    /// the signer adds those itself.
    public var headers: [SigV4Header]
    /// Lower-case hex SHA-256 of the exact payload bytes sent (see `SigV4Signer.payloadHash`).
    public var payloadHash: String

    public init(method: String, path: String, query: String = "", headers: [SigV4Header], payloadHash: String) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.payloadHash = payloadHash
    }
}

/// Choices that differ between AWS services and test suites.
public struct SigV4Options: Sendable, Hashable {
    /// Remove dot segments and merge repeated slashes before encoding (every service except S3).
    public var normalizePath: Bool
    /// Sign `x-amz-security-token` (true for Lambda). `false` adds the header after signing.
    public var signSessionToken: Bool
    /// Add and sign `x-amz-content-sha256` (S3-style; Lambda does not need it).
    public var addContentSHA256Header: Bool

    public init(normalizePath: Bool = true, signSessionToken: Bool = true, addContentSHA256Header: Bool = false) {
        self.normalizePath = normalizePath
        self.signSessionToken = signSessionToken
        self.addContentSHA256Header = addContentSHA256Header
    }
}

/// The outcome of signing: the headers to add to the request, in the order to add them.
public struct SigV4Signature: Sendable, Hashable {
    public let amzDate: String
    public let signedHeaders: String
    public let signature: String
    public let authorization: String
    /// `x-amz-date`, then `x-amz-security-token` and `x-amz-content-sha256` when used, then `authorization`.
    public let headersToAdd: [SigV4Header]
}

/// The intermediate texts of a signature, for tests and for explaining a signature mismatch.
public struct SigV4SigningDetails: Sendable, Hashable {
    public let canonicalRequest: String
    public let stringToSign: String
    public let signature: SigV4Signature
}

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for one service and region.
///
/// Pure: the signing time is a parameter, nothing is read from the environment. Thread-safe and
/// cheap to copy; copies share the signing-key cache.
public struct SigV4Signer: Sendable {
    public let service: String
    public let region: String
    public let options: SigV4Options
    let keyCache: SigningKeyCache

    public init(service: String, region: String, options: SigV4Options = .init(), keyCache: SigningKeyCache = .init()) {
        self.service = service
        self.region = region
        self.options = options
        self.keyCache = keyCache
    }

    /// Signs `request` with `credentials` at `date`.
    public func sign(_ request: SigV4Request, credentials: Credentials, date: Date) -> SigV4Signature {
        var canonical = [UInt8]()
        return sign(request, credentials: credentials, date: AMZDate(date), canonicalRequest: &canonical).signature
    }

    /// Signs and also returns the canonical request and string to sign.
    public func signWithDetails(_ request: SigV4Request, credentials: Credentials, date: Date) -> SigV4SigningDetails {
        var canonical = [UInt8]()
        let (signature, stringToSign) = sign(request, credentials: credentials, date: AMZDate(date), canonicalRequest: &canonical)
        return SigV4SigningDetails(
            canonicalRequest: String(decoding: canonical, as: UTF8.self),
            stringToSign: String(decoding: stringToSign, as: UTF8.self),
            signature: signature
        )
    }

    /// Lower-case hex SHA-256 of a payload, for `SigV4Request.payloadHash`.
    public static func payloadHash(_ bytes: UnsafeRawBufferPointer) -> String {
        Hex.encode(SHA256.hash(data: bytes))
    }

    public static func payloadHash(_ bytes: some Sequence<UInt8>) -> String {
        let array = Array(bytes)
        return array.withUnsafeBytes { payloadHash($0) }
    }

    private func sign(
        _ request: SigV4Request,
        credentials: Credentials,
        date: AMZDate,
        canonicalRequest canonical: inout [UInt8]
    ) -> (signature: SigV4Signature, stringToSign: [UInt8]) {
        var added = [SigV4Header("x-amz-date", date.timestamp)]
        if let token = credentials.sessionToken, !token.isEmpty {
            added.append(SigV4Header("x-amz-security-token", token))
        }
        if options.addContentSHA256Header {
            added.append(SigV4Header("x-amz-content-sha256", request.payloadHash))
        }

        var signing = request.headers
        for header in added where header.name != "x-amz-security-token" || options.signSessionToken {
            signing.append(header)
        }
        let signedHeaders = CanonicalRequest.build(
            request,
            headers: signing,
            normalizePath: options.normalizePath,
            into: &canonical
        )

        let scope = "\(date.day)/\(region)/\(service)/aws4_request"
        var stringToSign = [UInt8]()
        stringToSign.reserveCapacity(160)
        stringToSign.append(contentsOf: "AWS4-HMAC-SHA256\n".utf8)
        stringToSign.append(contentsOf: date.timestamp.utf8)
        stringToSign.append(UInt8(ascii: "\n"))
        stringToSign.append(contentsOf: scope.utf8)
        stringToSign.append(UInt8(ascii: "\n"))
        Hex.append(SHA256.hash(data: canonical), to: &stringToSign)

        let key = keyCache.signingKey(
            secret: credentials.secretAccessKey,
            day: date.day,
            region: region,
            service: service
        )
        let signature = Hex.encode(HMAC<SHA256>.authenticationCode(for: stringToSign, using: key))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        added.append(SigV4Header("authorization", authorization))
        return (
            SigV4Signature(
                amzDate: date.timestamp,
                signedHeaders: signedHeaders,
                signature: signature,
                authorization: authorization,
                headersToAdd: added
            ),
            stringToSign
        )
    }
}

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

/// The outcome of signing: the headers to add to the request.
public struct SigV4Signature: Sendable, Hashable {
    /// `x-amz-date`.
    public let amzDate: String
    /// `authorization`.
    public let authorization: String
    /// `x-amz-security-token`, when the credentials carry one.
    public let sessionToken: String?
    /// `x-amz-content-sha256`, when `SigV4Options.addContentSHA256Header` asked for it.
    public let contentSHA256: String?

    /// The `;`-joined signed header names.
    public var signedHeaders: String {
        guard let start = authorization.range(of: "SignedHeaders="), let end = authorization.range(of: ", Signature=") else { return "" }
        return String(authorization[start.upperBound..<end.lowerBound])
    }

    /// The lower-case hex signature.
    public var signature: String {
        guard let start = authorization.range(of: "Signature=") else { return "" }
        return String(authorization[start.upperBound...])
    }

    /// `x-amz-date`, then `x-amz-security-token` and `x-amz-content-sha256` when used, then `authorization`.
    public var headersToAdd: [SigV4Header] {
        var headers = [SigV4Header("x-amz-date", amzDate)]
        if let sessionToken { headers.append(SigV4Header("x-amz-security-token", sessionToken)) }
        if let contentSHA256 { headers.append(SigV4Header("x-amz-content-sha256", contentSHA256)) }
        headers.append(SigV4Header("authorization", authorization))
        return headers
    }
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
        var stringToSign = [UInt8]()
        return sign(request, credentials: credentials, date: keyCache.amzDate(date), canonical: &canonical, stringToSign: &stringToSign)
    }

    /// Signs and also returns the canonical request and string to sign.
    public func signWithDetails(_ request: SigV4Request, credentials: Credentials, date: Date) -> SigV4SigningDetails {
        var canonical = [UInt8]()
        var stringToSign = [UInt8]()
        let signature = sign(request, credentials: credentials, date: AMZDate(date), canonical: &canonical, stringToSign: &stringToSign)
        return SigV4SigningDetails(
            canonicalRequest: String(decoding: canonical, as: UTF8.self),
            stringToSign: String(decoding: stringToSign, as: UTF8.self),
            signature: signature
        )
    }

    /// Lower-case hex SHA-256 of a payload, for `SigV4Request.payloadHash`; from `prefix`'s kept
    /// state when the payload opens with its bytes (`SHA256Prefix`).
    public static func payloadHash(_ bytes: UnsafeRawBufferPointer, prefix: SHA256Prefix? = nil) -> String {
        Hex.encode(prefix?.hash(bytes) ?? SHA256.hash(data: bytes))
    }

    public static func payloadHash(_ bytes: some Sequence<UInt8>) -> String {
        let array = Array(bytes)
        return array.withUnsafeBytes { payloadHash($0) }
    }

    private func sign(
        _ request: SigV4Request,
        credentials: Credentials,
        date: AMZDate,
        canonical: inout [UInt8],
        stringToSign: inout [UInt8]
    ) -> SigV4Signature {
        let token = credentials.sessionToken.flatMap { $0.isEmpty ? nil : $0 }
        var headers = [SigV4Header]()
        headers.reserveCapacity(request.headers.count + 3)
        for header in request.headers {
            headers.append(SigV4Header(CanonicalRequest.lowercased(header.name), CanonicalRequest.canonicalValue(header.value)))
        }
        headers.append(SigV4Header("x-amz-date", date.timestamp))
        if let token, options.signSessionToken {
            headers.append(SigV4Header("x-amz-security-token", token))
        }
        if options.addContentSHA256Header {
            headers.append(SigV4Header("x-amz-content-sha256", request.payloadHash))
        }
        let signedHeaders = CanonicalRequest.build(request, headers: &headers, normalizePath: options.normalizePath, into: &canonical)

        let digest = canonical.withUnsafeBytes { SHA256.hash(data: $0) }
        return finish(canonicalDigest: digest, signedHeaders: signedHeaders, date: date, credentials: credentials, token: token, payloadHash: request.payloadHash, stringToSign: &stringToSign)
    }

    /// String to sign (written into `stringToSign`), HMAC with the cached signing key, `Authorization` value.
    func finish(
        canonicalDigest: SHA256.Digest,
        signedHeaders: [UInt8],
        date: AMZDate,
        credentials: Credentials,
        token: String?,
        payloadHash: String,
        stringToSign: inout [UInt8]
    ) -> SigV4Signature {
        let (opening, scope) = stringToSignOpening(date: date)
        stringToSign = opening
        Hex.append(canonicalDigest, to: &stringToSign)

        let mac = keyCache.keyedHMAC(secret: credentials.secretAccessKey, day: date.day, region: region, service: service)
        let signature = stringToSign.withUnsafeBytes { mac.authenticationCode(for: $0) }
        return SigV4Signature(
            amzDate: date.timestamp,
            authorization: authorization(accessKeyID: credentials.accessKeyID, scope: stringToSign[scope], signedHeaders: signedHeaders, signature: signature),
            sessionToken: token,
            contentSHA256: options.addContentSHA256Header ? payloadHash : nil
        )
    }

    /// `AWS4-HMAC-SHA256\n<timestamp>\n<day>/<region>/<service>/aws4_request\n`: the string to sign
    /// up to the canonical request's hash, and where the credential scope is in it.
    func stringToSignOpening(date: AMZDate) -> (bytes: [UInt8], scope: Range<Int>) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160)
        bytes.append(contentsOf: "AWS4-HMAC-SHA256\n".utf8)
        bytes.appendUTF8(date.timestamp)
        bytes.append(UInt8(ascii: "\n"))
        let scopeStart = bytes.count
        appendScope(day: date.day, to: &bytes)
        let scopeEnd = bytes.count
        bytes.append(UInt8(ascii: "\n"))
        return (bytes, scopeStart..<scopeEnd)
    }

    /// The `Authorization` value, built in place as one String.
    func authorization(accessKeyID: String, scope: ArraySlice<UInt8>, signedHeaders: [UInt8], signature: SHA256Digest) -> String {
        let credentialPrefix: StaticString = "AWS4-HMAC-SHA256 Credential="
        let signedHeadersLabel: StaticString = ", SignedHeaders="
        let signatureLabel: StaticString = ", Signature="
        let length =
            credentialPrefix.utf8CodeUnitCount + accessKeyID.utf8.count + 1 + scope.count
            + signedHeadersLabel.utf8CodeUnitCount + signedHeaders.count
            + signatureLabel.utf8CodeUnitCount + 2 * SHA256.byteCount
        return String(unsafeUninitializedCapacity: length) { output in
            var writer = UnsafeByteWriter(output.baseAddress!)
            writer.write(credentialPrefix)
            writer.write(accessKeyID)
            writer.write("/")
            writer.write(scope)
            writer.write(signedHeadersLabel)
            writer.write(signedHeaders)
            writer.write(signatureLabel)
            writer.writeHex(signature)
            return writer.count
        }
    }

    private func appendScope(day: String, to bytes: inout [UInt8]) {
        bytes.appendUTF8(day)
        bytes.append(UInt8(ascii: "/"))
        bytes.appendUTF8(region)
        bytes.append(UInt8(ascii: "/"))
        bytes.appendUTF8(service)
        bytes.append(contentsOf: "/aws4_request".utf8)
    }
}

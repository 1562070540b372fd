import AWSSigV4
import Foundation

/// Checks a request's SigV4 signature the way Lambda's front end does: same credentials, same
/// canonical request from what arrived, time within 15 minutes. Pure; used by dev mode's endpoint.
public struct SigV4Verifier: Sendable {
    public let credentials: Credentials
    public let service: String

    public enum Failure: Error, Equatable, Sendable {
        /// 403 `MissingAuthenticationTokenException` / `IncompleteSignatureException`.
        case missingOrMalformed(String)
        /// 403 `UnrecognizedClientException`: an access key this endpoint does not know.
        case unknownAccessKey(String)
        /// 403 `InvalidSignatureException`.
        case signatureMismatch
        /// 403 `InvalidSignatureException`: "Signature expired".
        case expired(String)

        public var code: String {
            switch self {
            case .missingOrMalformed: "IncompleteSignatureException"
            case .unknownAccessKey: "UnrecognizedClientException"
            case .signatureMismatch, .expired: "InvalidSignatureException"
            }
        }

        public var message: String {
            switch self {
            case .missingOrMalformed(let why): why
            case .unknownAccessKey: "The security token included in the request is invalid."
            case .signatureMismatch:
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
            case .expired(let date): "Signature expired: \(date) is now earlier or later than 15 minutes from now."
            }
        }
    }

    public init(credentials: Credentials, service: String = "lambda") {
        self.credentials = credentials
        self.service = service
    }

    public func verify(method: String, path: String, query: String, headers: [(name: String, value: String)], body: some Collection<UInt8>, now: Date = Date()) -> Failure? {
        func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name }?.value }
        guard let authorization = header("authorization") else { return .missingOrMalformed("Missing Authentication Token") }
        guard let parts = Self.parse(authorization) else { return .missingOrMalformed("Authorization header is not AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…") }
        guard parts.accessKeyID == credentials.accessKeyID else { return .unknownAccessKey(parts.accessKeyID) }
        guard let amzDate = header("x-amz-date"), let date = Self.parseDate(amzDate) else { return .missingOrMalformed("X-Amz-Date is missing or malformed") }
        guard abs(date.timeIntervalSince(now)) <= 15 * 60 else { return .expired(amzDate) }
        // The signer adds x-amz-date (and the session token) itself.
        let signedNames = Set(parts.signedHeaders)
        let signed = headers.filter { signedNames.contains($0.name.lowercased()) && !["x-amz-date", "x-amz-security-token"].contains($0.name.lowercased()) }
        let request = SigV4Request(
            method: method, path: path, query: query, headers: signed.map { SigV4Header($0.name, $0.value) },
            payloadHash: SigV4Signer.payloadHash(body)
        )
        var identity = credentials
        identity.sessionToken = header("x-amz-security-token")
        let expected = SigV4Signer(service: service, region: parts.region).sign(request, credentials: identity, date: date)
        return expected.signature == parts.signature && expected.signedHeaders == parts.signedHeaders.joined(separator: ";") ? nil : .signatureMismatch
    }

    struct AuthorizationParts {
        var accessKeyID: String
        var region: String
        var signedHeaders: [String]
        var signature: String
    }

    static func parse(_ header: String) -> AuthorizationParts? {
        guard header.hasPrefix("AWS4-HMAC-SHA256 ") else { return nil }
        var fields: [String: String] = [:]
        for item in header.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
            let pair = item.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { return nil }
            fields[String(pair[0])] = String(pair[1])
        }
        guard let credential = fields["Credential"], let signed = fields["SignedHeaders"], let signature = fields["Signature"] else { return nil }
        let scope = credential.split(separator: "/")
        guard scope.count == 5, scope[4] == "aws4_request" else { return nil }
        return AuthorizationParts(accessKeyID: String(scope[0]), region: String(scope[2]), signedHeaders: signed.split(separator: ";").map(String.init), signature: signature)
    }

    static func parseDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.date(from: text)
    }
}

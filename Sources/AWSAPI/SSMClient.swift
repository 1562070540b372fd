import LambdaPayload
import NIOCore

/// Parameter Store's storage classes (`CONSUL_EXTENSION_DATA_TIER`, docs/COMPATIBILITY.md, Environment).
public enum ParameterTier: String, Sendable, Hashable {
    case standard = "Standard"
    case advanced = "Advanced"
    case intelligentTiering = "Intelligent-Tiering"

    /// The largest value the tier stores, in bytes; Intelligent-Tiering moves a larger value to Advanced.
    public var maximumValueBytes: Int {
        self == .standard ? 4096 : 8192
    }
}

/// Parameter Store calls (JSON 1.1: `POST /`, `X-Amz-Target: AmazonSSM.<Operation>`, SigV4 service
/// `ssm`): the registrator's mTLS data (docs/COMPATIBILITY.md, What it writes) and its token and CA parameters.
public struct SSMClient: Sendable {
    let client: AWSAPIClient

    /// Writes a value (a `SecureString` under the account's default `aws/ssm` key when `secure`).
    /// A value over the tier's size (or, without a tier, over any tier's) is refused before sending.
    public func putParameter(name: String, value: String, secure: Bool = true, overwrite: Bool = true, tier: ParameterTier? = nil) async throws(AWSAPIError) {
        let operation = "PutParameter"
        try Self.checkName(name, operation)
        let size = value.utf8.count
        let limit = tier?.maximumValueBytes ?? ParameterTier.advanced.maximumValueBytes
        guard size <= limit else {
            let tierName = tier.map { "the \($0.rawValue) tier's" } ?? "every tier's"
            throw AWSAPIError(.invalidRequest, "\(operation) \(name): a value of \(size) bytes is over \(tierName) limit of \(limit) bytes")
        }
        var members = [
            JSONMember("Name", .string(name)),
            JSONMember("Value", .string(value)),
            JSONMember("Type", .string(secure ? "SecureString" : "String")),
            JSONMember("Overwrite", .bool(overwrite)),
        ]
        if let tier { members.append(JSONMember("Tier", .string(tier.rawValue))) }
        _ = try await call(operation, .object(members))
    }

    /// The parameter's value, decrypted when `withDecryption` (a `SecureString` otherwise comes back
    /// encrypted).
    public func getParameter(name: String, withDecryption: Bool = true) async throws(AWSAPIError) -> String {
        let operation = "GetParameter"
        try Self.checkName(name, operation)
        let answer = try await call(operation, .object([JSONMember("Name", .string(name)), JSONMember("WithDecryption", .bool(withDecryption))]), idempotent: true)
        guard let parameter = answer["Parameter"] else {
            throw AWSAPIError(.malformedResponse, "\(operation) \(name): the answer has no \"Parameter\"")
        }
        return try parameter.requiredString("Value", operation)
    }

    /// Deletes the parameter; a missing one is a `ParameterNotFound` error (`isNotFound`).
    public func deleteParameter(name: String) async throws(AWSAPIError) {
        let operation = "DeleteParameter"
        try Self.checkName(name, operation)
        _ = try await call(operation, .object([JSONMember("Name", .string(name))]))
    }

    private func call(_ operation: String, _ input: JSONValue, idempotent: Bool = false) async throws(AWSAPIError) -> JSONValue {
        let request = AWSRequest(
            operation: operation,
            method: .POST,
            path: "/",
            headers: [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "AmazonSSM.\(operation)")],
            body: ByteBuffer(string: input.jsonText),
            idempotent: idempotent
        )
        return try await client.send(request, to: client.ssmService).jsonObject(operation)
    }

    private static func checkName(_ name: String, _ operation: String) throws(AWSAPIError) {
        guard !name.isEmpty else { throw AWSAPIError(.invalidRequest, "\(operation): empty parameter name") }
    }
}

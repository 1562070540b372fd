import AWSAPI
import TestSupport
import Testing

/// Parameter Store calls against moto, which checks every signature and the registrator's policy.
@Suite("Parameter Store against moto with IAM authentication on", .serialized)
struct MotoSSMTests {
    /// Shaped as the extension data (docs/COMPATIBILITY.md, What it writes): newlines and quotes survive.
    static let pemJSON =
        #"{"privateKeyPEM":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n","certPEM":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","trustDomain":"11111111-2222-3333-4444-555555555555.consul"}"#

    @Test func secureStringRoundTripOverwriteAndDelete() async throws {
        try await withMoto { moto in
            try await withClient(try makeClient(endpoint: moto.endpoint, credentials: CountingCredentialSource(moto.fixture.registrator))) { client in
                let name = "/lambda_extension_data/default/default/orders"
                let multiline = Self.pemJSON + "\n\"and a quoted line\"\n"
                try await client.ssm.putParameter(name: name, value: multiline)
                let stored = try await client.ssm.getParameter(name: name)
                #expect(stored == multiline)

                try await client.ssm.putParameter(name: name, value: "second", tier: .standard)
                let overwritten = try await client.ssm.getParameter(name: name, withDecryption: true)
                #expect(overwritten == "second")

                try await client.ssm.deleteParameter(name: name)
                let afterDelete = await #expect(throws: AWSAPIError.self) { try await client.ssm.getParameter(name: name) }
                #expect(afterDelete?.isNotFound == true)
                #expect(afterDelete?.awsErrorCode == "ParameterNotFound")

                let deleteMissing = await #expect(throws: AWSAPIError.self) { try await client.ssm.deleteParameter(name: name) }
                #expect(deleteMissing?.code == .aws(status: 400, code: "ParameterNotFound"))
                #expect(deleteMissing?.isNotFound == true)
                #expect(client.callCounts() == ["PutParameter": 2, "GetParameter": 3, "DeleteParameter": 2])
            }
        }
    }

    @Test func putWithoutOverwriteKeepsTheExistingValue() async throws {
        try await withMoto { moto in
            try await withClient(try makeClient(endpoint: moto.endpoint, credentials: CountingCredentialSource(moto.fixture.registrator))) { client in
                try await client.ssm.putParameter(name: "/token", value: "first", secure: false)
                let error = await #expect(throws: AWSAPIError.self) { try await client.ssm.putParameter(name: "/token", value: "second", overwrite: false) }
                #expect(error?.awsErrorCode == "ParameterAlreadyExists")
                let kept = try await client.ssm.getParameter(name: "/token", withDecryption: false)
                #expect(kept == "first")
            }
        }
    }
}

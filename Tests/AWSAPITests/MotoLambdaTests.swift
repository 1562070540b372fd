import AWSAPI
import AWSCredentials
import AWSSigV4
import Foundation
import TestSupport
import Testing

/// Lambda's control-plane reads against moto, which checks every signature with botocore's code
/// (the ARN path signed double-encoded, the marker query) and the registrator user's IAM policy.
@Suite("Lambda reads against moto with IAM authentication on", .serialized)
struct MotoLambdaTests {
    func registratorClient(_ moto: MotoServer) throws -> AWSAPIClient {
        try makeClient(endpoint: moto.endpoint, credentials: CountingCredentialSource(moto.fixture.registrator))
    }

    @Test func listFunctionsReturnsEveryFunctionOnceAcrossPages() async throws {
        try await withMoto { moto in
            let names = (1...7).map { "page-fn-\($0)" }
            let created = try await moto.applyLambdaCommands(Self.commands(names.map { ["op": "create", "name": $0] }))
            try await withClient(try registratorClient(moto)) { client in
                var listed: [LambdaFunctionSummary] = []
                var marker: String?
                var pages = 0
                repeat {
                    let page = try await client.lambda.listFunctions(marker: marker, maxItems: 3)
                    #expect(page.functions.count <= 3)
                    listed += page.functions
                    marker = page.nextMarker
                    pages += 1
                } while marker != nil && pages < 10
                // The fixture's `orders` and the seven: 8 functions, pages of 3, 3 and 2.
                #expect(pages == 3)
                #expect(listed.map(\.name).sorted() == (names + [moto.fixture.function_name]).sorted())
                #expect(Set(listed.map(\.name)).count == listed.count)
                for function in listed where function.name != moto.fixture.function_name {
                    #expect(function.arn == created.arns[function.name])
                }
                #expect(client.callCounts() == ["ListFunctions": 3])
            }
        }
    }

    @Test func tagsSetThroughBoto3AreReadByListTagsAndGetFunction() async throws {
        try await withMoto { moto in
            let created = try await moto.applyLambdaCommands(
                Self.commands([
                    ["op": "create", "name": "tagged", "tags": ["consul.hashicorp.com/service-name": "orders-api", "stale": "x"]],
                    ["op": "tag", "name": "tagged", "tags": ["consul.hashicorp.com/aliases": "prod+dev"]],
                    ["op": "untag", "name": "tagged", "keys": ["stale"]],
                ]))
            let arn = try #require(created.arns["tagged"])
            let expected = ["consul.hashicorp.com/service-name": "orders-api", "consul.hashicorp.com/aliases": "prod+dev"]
            try await withClient(try registratorClient(moto)) { client in
                let tags = try await client.lambda.listTags(resource: arn)
                #expect(tags == expected)

                let byARN = try await client.lambda.getFunction(arn)
                #expect(byARN == LambdaFunctionDetails(function: LambdaFunctionSummary(name: "tagged", arn: arn), tags: expected))
                let byName = try await client.lambda.getFunction("tagged")
                #expect(byName.function.arn == arn)
                #expect(byName.tags == expected)
            }
        }
    }

    @Test func listAliasesReadsEveryPage() async throws {
        try await withMoto { moto in
            let created = try await moto.applyLambdaCommands(
                Self.commands([
                    ["op": "create", "name": "aliased"],
                    ["op": "alias", "name": "aliased", "alias": "prod"],
                    ["op": "alias", "name": "aliased", "alias": "dev"],
                    ["op": "alias", "name": "aliased", "alias": "canary"],
                ]))
            let arn = try #require(created.arns["aliased"])
            try await withClient(try registratorClient(moto)) { client in
                let paged = try await client.lambda.listAliases(function: arn, maxItems: 2)
                #expect(paged.sorted() == ["canary", "dev", "prod"])
                #expect(client.callCounts() == ["ListAliases": 2])
                let byName = try await client.lambda.listAliases(function: "aliased")
                #expect(byName.sorted() == ["canary", "dev", "prod"])
            }
        }
    }

    @Test func unknownFunctionIsNotFoundWithAWSCode() async throws {
        try await withMoto { moto in
            _ = try await moto.applyLambdaCommands(Self.commands([["op": "create", "name": "deleted"], ["op": "delete", "name": "deleted"]]))
            try await withClient(try registratorClient(moto)) { client in
                let missing = "arn:aws:lambda:us-east-1:123456789012:function:deleted"
                let error = await #expect(throws: AWSAPIError.self) { try await client.lambda.getFunction(missing) }
                #expect(error?.isNotFound == true)
                #expect(error?.code == .aws(status: 404, code: "ResourceNotFoundException"))
                #expect(error?.awsErrorCode == "ResourceNotFoundException")
                #expect(error?.message.contains("deleted") == true)

                let tagsError = await #expect(throws: AWSAPIError.self) { try await client.lambda.listTags(resource: missing) }
                #expect(tagsError?.isNotFound == true)
                // Not found is an answer, not a failure: one request each.
                #expect(client.callCounts() == ["GetFunction": 1, "ListTags": 1])
            }
        }
    }

    @Test func wrongSecretKeyIsAnAuthenticationErrorNotRetried() async throws {
        try await withMoto { moto in
            let keys = moto.fixture.registrator
            let credentials = CountingCredentialSource(Credentials(accessKeyID: keys.access_key_id, secretAccessKey: "not-the-secret"))
            try await withClient(try makeClient(endpoint: moto.endpoint, credentials: credentials)) { client in
                let error = await #expect(throws: AWSAPIError.self) { try await client.lambda.listFunctions(marker: nil, maxItems: 10) }
                #expect(error?.code == .aws(status: 403, code: "SignatureDoesNotMatch"))
                #expect(error?.isAuthenticationFailure == true)
                #expect(credentials.authenticationFailures == 1)
                #expect(client.callCounts() == ["ListFunctions": 1])
            }
        }
    }

    @Test func userWithoutTheReadPermissionsIsDenied() async throws {
        try await withMoto { moto in
            // The fixture's `user` may only invoke.
            try await withClient(try makeClient(endpoint: moto.endpoint, credentials: CountingCredentialSource(moto.fixture.user))) { client in
                let error = await #expect(throws: AWSAPIError.self) { try await client.lambda.listTags(resource: moto.fixture.function_arn) }
                #expect(error?.code == .aws(status: 403, code: "AccessDenied"))
                #expect(client.callCounts() == ["ListTags": 1])
            }
        }
    }

    static func commands(_ list: [[String: Any]]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: list), as: UTF8.self)
    }
}

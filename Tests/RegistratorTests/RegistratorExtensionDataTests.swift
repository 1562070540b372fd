import AWSAPI
import ConsulAPI
import Foundation
import LambdaPayload
import Registrator
import TestSupport
import Testing

/// The mTLS data (docs/COMPATIBILITY.md, What it writes) against moto's Parameter Store and the Consul test server's CA.
@Suite(.serialized) struct RegistratorExtensionDataTests {
    typealias Fixture = RegistratorFixture

    func registrator(_ fixture: Fixture) -> Registrator {
        fixture.registrator { $0.extensionDataPrefix = "/lambda_extension_data" }
    }

    func parameter(_ fixture: Fixture, _ service: String) async throws -> JSONValue? {
        do {
            let text = try await fixture.aws.ssm.getParameter(name: "/lambda_extension_data/default/default/\(service)", withDecryption: true)
            return try JSONParser.parse(Array(text.utf8))
        } catch let error as AWSAPIError where error.isNotFound {
            return nil
        }
    }

    func rootsPEM(_ fixture: Fixture) async throws -> (active: String, all: [String], trustDomain: String) {
        let response = try await fixture.consulClient.send(.GET, "/v1/agent/connect/ca/roots")
        let roots = try ConsulClient.decode(CARoots.self, response.body, endpoint: "roots")
        let active = roots.Roots.first { $0.ID == roots.ActiveRootID }!.RootCert
        return (active, roots.Roots.map(\.RootCert), roots.TrustDomain)
    }

    @Test func theDataHasTheExactKeysTheLeafAndEveryRoot() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": Fixture.enabled()]])
            let report = await registrator(fixture).fullSync()
            #expect(report.parametersWritten == 1, "\(report.errors)")
            guard case .object(let members)? = try await parameter(fixture, "orders") else {
                Issue.record("no parameter")
                return
            }
            #expect(members.map(\.name) == ["privateKeyPEM", "certPEM", "rootCertPEM", "trustDomain"])
            let leafResponse = try await fixture.consulClient.send(.GET, "/v1/agent/connect/ca/leaf/orders")
            let leaf = try ConsulClient.decode(LeafCertificate.self, leafResponse.body, endpoint: "leaf")
            let roots = try await rootsPEM(fixture)
            #expect(members[1].value == .string(leaf.CertPEM))
            #expect(members[0].value == .string(leaf.PrivateKeyPEM))
            #expect(members[3].value == .string(roots.trustDomain))
            guard case .string(let rootText) = members[2].value else {
                Issue.record("rootCertPEM is not a string")
                return
            }
            #expect(rootText.hasPrefix(roots.active))
        }
    }

    @Test func currentDataIsNotRewrittenAndARootsRotationRewritesIt() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([["op": "tag", "name": "orders", "tags": Fixture.enabled()]])
            let registrator = registrator(fixture)
            _ = await registrator.fullSync()
            let unchanged = await registrator.fullSync()
            #expect(unchanged.parametersWritten == 0)

            try fixture.consul.rotateRoots()
            let rotated = await registrator.fullSync()
            #expect(rotated.parametersWritten == 1)
            guard case .string(let rootText)? = try await parameter(fixture, "orders")?["rootCertPEM"] else {
                Issue.record("no roots")
                return
            }
            let roots = try await rootsPEM(fixture)
            // docs/DECISIONS.md D47: the new active root first, the old one still trusted.
            #expect(roots.all.count == 2)
            #expect(rootText.hasPrefix(roots.active))
            #expect(roots.all.allSatisfy { rootText.contains($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        }
    }

    @Test func aDeregisteredServiceLosesItsDataAndAMissingParameterIsNoError() async throws {
        try await Fixture.with { fixture in
            try await fixture.lambda([
                ["op": "tag", "name": "orders", "tags": Fixture.enabled()],
                ["op": "create", "name": "billing", "tags": Fixture.enabled()],
            ])
            let registrator = registrator(fixture)
            _ = await registrator.fullSync()
            #expect(try await parameter(fixture, "billing") != nil)
            // billing's parameter is already gone when its function is disabled (docs/DECISIONS.md D52).
            try await fixture.aws.ssm.deleteParameter(name: "/lambda_extension_data/default/default/billing")
            try await fixture.lambda([
                ["op": "untag", "name": "orders", "keys": [FunctionTags.enabled]],
                ["op": "untag", "name": "billing", "keys": [FunctionTags.enabled]],
            ])
            let report = await registrator.fullSync()
            #expect(report.deleted == 2)
            #expect(report.errors.isEmpty, "\(report.errors)")
            #expect(try await parameter(fixture, "orders") == nil)
        }
    }
}

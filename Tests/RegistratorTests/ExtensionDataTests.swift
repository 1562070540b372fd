import AWSAPI
import ConsulAPI
import Foundation
import Registrator
import TestSupport
import Testing

@Suite struct ExtensionDataTests {
    static func roots(_ pems: [(id: String, pem: String)], active: String, trustDomain: String = "11111111-2222-3333-4444-555555555555.consul") throws -> CARoots {
        let list = pems.map { #"{"ID":"\#($0.id)","RootCert":\#(String(decoding: try! JSONEncoder().encode($0.pem), as: UTF8.self)),"Active":\#($0.id == active)}"# }
        let json = #"{"ActiveRootID":"\#(active)","TrustDomain":"\#(trustDomain)","Roots":[\#(list.joined(separator: ","))]}"#
        return try JSONDecoder().decode(CARoots.self, from: Data(json.utf8))
    }

    static func leaf(certificate: String, key: String) throws -> LeafCertificate {
        let json =
            #"{"SerialNumber":"1","CertPEM":\#(String(decoding: try JSONEncoder().encode(certificate), as: UTF8.self)),"PrivateKeyPEM":\#(String(decoding: try JSONEncoder().encode(key), as: UTF8.self)),"Service":"orders","ServiceURI":"spiffe://x/ns/default/dc/dc1/svc/orders","ValidAfter":"2026-01-01T00:00:00Z","ValidBefore":"2026-01-04T00:00:00Z","CreateIndex":1,"ModifyIndex":1}"#
        return try JSONDecoder().decode(LeafCertificate.self, from: Data(json.utf8))
    }

    @Test func theValueHasTheReferencesKeysInItsOrder() {
        let data = ExtensionData(privateKeyPEM: "K\n", certPEM: "C\n", rootCertPEM: "R1\nR2\n", trustDomain: "td.consul")
        #expect(data.json == #"{"privateKeyPEM":"K\n","certPEM":"C\n","rootCertPEM":"R1\nR2\n","trustDomain":"td.consul"}"#)
        #expect(ExtensionData(json: data.json) == data)
    }

    @Test func everyRootIsWrittenActiveFirst() throws {
        let roots = try Self.roots([("old", "OLD"), ("new", "NEW\n")], active: "new")
        #expect(ExtensionData.rootsPEM(roots) == "NEW\nOLD\n")
        #expect(ExtensionData.rootsPEM(roots, activeOnly: true) == "NEW\n")
    }

    @Test func aFreshValueIsNotRewrittenAndEveryStaleKindIs() throws {
        let ca = try TestCA()
        let now = Date()
        let fresh = try ca.issueLeaf(notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(72 * 3600))
        let roots = try Self.roots([("a", try ca.pem)], active: "a")
        let policy = ExtensionDataPolicy()
        let (data, warning) = try #require(policy.value(leaf: try Self.leaf(certificate: try fresh.certificatePEM, key: fresh.keyPEM), roots: roots))
        #expect(warning == nil)
        #expect(policy.refreshReason(stored: data.json, roots: roots, now: now) == nil)
        #expect(policy.refreshReason(stored: nil, roots: roots, now: now) == "missing")
        #expect(policy.refreshReason(stored: "{\"certPEM\":1}", roots: roots, now: now) == "not the documented JSON")
        #expect(policy.refreshReason(stored: data.json, roots: try Self.roots([("a", try ca.pem)], active: "a", trustDomain: "other.consul"), now: now) == "trust domain changed")
        let rotated = try Self.roots([("a", try ca.pem), ("b", try TestCA().pem)], active: "b")
        #expect(policy.refreshReason(stored: data.json, roots: rotated, now: now) == "CA roots changed")
        // 72 h lifetime: past half of it at 37 h.
        #expect(policy.refreshReason(stored: data.json, roots: roots, now: now.addingTimeInterval(37 * 3600)) == "certificate past half its lifetime")
        let long = try ca.issueLeaf(notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(40 * 3600))
        let longData = try #require(policy.value(leaf: try Self.leaf(certificate: try long.certificatePEM, key: long.keyPEM), roots: roots)).data
        #expect(policy.refreshReason(stored: longData.json, roots: roots, now: now.addingTimeInterval(17 * 3600)) == "certificate expires within 24 h")
    }

    @Test func tooManyRootsFallBackToTheActiveOneAndThatFormIsStable() throws {
        let ca = try TestCA()
        let leaf = try ca.issueLeaf(notValidAfter: Date().addingTimeInterval(72 * 3600))
        // Enough extra roots to pass 4 KB.
        var list = [(id: "active", pem: try ca.pem)]
        for index in 0..<8 { list.append((id: "old\(index)", pem: try TestCA().pem)) }
        let roots = try Self.roots(list, active: "active")
        let standard = ExtensionDataPolicy()
        let (data, warning) = try #require(standard.value(leaf: try Self.leaf(certificate: try leaf.certificatePEM, key: leaf.keyPEM), roots: roots))
        #expect(warning != nil)
        #expect(data.rootCertPEM == ExtensionData.rootsPEM(roots, activeOnly: true))
        #expect(data.json.utf8.count <= 4096)
        #expect(standard.refreshReason(stored: data.json, roots: roots, now: Date()) == nil)
        #expect(standard.tier(forValueOfSize: data.json.utf8.count) == nil)

        let advanced = ExtensionDataPolicy(tier: .advanced)
        let (all, none) = try #require(advanced.value(leaf: try Self.leaf(certificate: try leaf.certificatePEM, key: leaf.keyPEM), roots: roots))
        #expect(none == nil)
        #expect(all.rootCertPEM == ExtensionData.rootsPEM(roots))
        #expect(advanced.tier(forValueOfSize: all.json.utf8.count) == .advanced)
        #expect(advanced.tier(forValueOfSize: 100) == nil)
    }

    @Test(arguments: [("standard", ParameterTier.standard), ("ADVANCED", .advanced), ("Intelligent-Tiering", .intelligentTiering)])
    func tierSettingIsCaseInsensitive(_ text: String, _ tier: ParameterTier) {
        #expect(ParameterTier(setting: text) == tier)
    }
}

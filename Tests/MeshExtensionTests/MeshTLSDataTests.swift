import Foundation
import LambdaPayload
import MeshExtension
import TestSupport
import Testing

/// docs/DECISIONS.md D66: the data is checked before anything is served.
@Suite struct MeshTLSDataTests {
    func value(certificate: String, key: String, roots: String, trustDomain: String = "td.consul") -> String {
        JSONValue.object([
            JSONMember("privateKeyPEM", .string(key)), JSONMember("certPEM", .string(certificate)),
            JSONMember("rootCertPEM", .string(roots)), JSONMember("trustDomain", .string(trustDomain)),
        ]).jsonText
    }

    @Test func aValidValueWithSeveralRootsParses() throws {
        let ca = try TestCA()
        let old = try TestCA()
        let leaf = try ca.issueLeaf(uris: ["spiffe://td.consul/ns/default/dc/dc1/svc/orders"])
        let data = try MeshTLSData(json: value(certificate: try leaf.certificatePEM, key: leaf.keyPEM, roots: try ca.pem + old.pem), now: Date())
        #expect(data.roots.count == 2)
        #expect(data.certificateChainPEM.count == 1)
        #expect(data.trustDomain == "td.consul")
    }

    @Test func aKeyOfAnotherCertificateIsRefused() throws {
        let ca = try TestCA()
        let leaf = try ca.issueLeaf()
        let other = try ca.issueLeaf()
        #expect(throws: MeshTLSData.Error(message: "privateKeyPEM is not the key of certPEM")) {
            try MeshTLSData(json: value(certificate: try leaf.certificatePEM, key: other.keyPEM, roots: try ca.pem), now: Date())
        }
    }

    @Test func anExpiredOrNotYetValidCertificateIsRefused() throws {
        let ca = try TestCA()
        let leaf = try ca.issueLeaf(notValidBefore: Date().addingTimeInterval(-7200), notValidAfter: Date().addingTimeInterval(-60))
        #expect(throws: MeshTLSData.Error.self) {
            try MeshTLSData(json: value(certificate: try leaf.certificatePEM, key: leaf.keyPEM, roots: try ca.pem), now: Date())
        }
        let future = try ca.issueLeaf(notValidBefore: Date().addingTimeInterval(3600), notValidAfter: Date().addingTimeInterval(7200))
        #expect(throws: MeshTLSData.Error.self) {
            try MeshTLSData(json: value(certificate: try future.certificatePEM, key: future.keyPEM, roots: try ca.pem), now: Date())
        }
    }

    @Test(arguments: ["", "[]", #"{"certPEM":"x"}"#, #"{"privateKeyPEM":"k","certPEM":"not pem","rootCertPEM":"r","trustDomain":"t"}"#])
    func malformedValuesAreRefused(_ text: String) {
        #expect(throws: MeshTLSData.Error.self) { try MeshTLSData(json: text, now: Date()) }
    }

    @Test func rootsWithoutACertificateAreRefused() throws {
        let ca = try TestCA()
        let leaf = try ca.issueLeaf()
        #expect(throws: MeshTLSData.Error(message: "rootCertPEM holds no certificate")) {
            try MeshTLSData(json: value(certificate: try leaf.certificatePEM, key: leaf.keyPEM, roots: "garbage"), now: Date())
        }
    }
}

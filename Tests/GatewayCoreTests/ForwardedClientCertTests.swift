import Crypto
import Foundation
import TestSupport
import Testing
import X509

@testable import GatewayCore

/// The connection's `x-forwarded-client-cert` element: `Cert` and `Chain` are the certificates'
/// PEM texts, URL-encoded, as Envoy sends them.
@Suite("The x-forwarded-client-cert element")
struct ForwardedClientCertTests {
    /// The PEM is made from the DER bytes in one pass: the same text as swift-certificates' PEM
    /// percent-encoded by Foundation (RFC 3986's unreserved characters kept, upper-case hex),
    /// for certificates of many lengths (each a different base64 tail and line count).
    @Test func certAndChainAreThePEMTextsPercentEncoded() throws {
        let ca = try TestCA()
        var unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        unreserved.insert(charactersIn: "-._~")
        func encoded(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: unreserved)! }
        var lengths = Set<Int>()
        for extra in 0..<12 {
            let uri = "spiffe://td/ns/default/dc/dc1/svc/web" + String(repeating: "x", count: extra * 7)
            let leaf = try ca.issueLeaf(commonName: "web", dnsNames: Array(repeating: "a.example", count: extra % 3), uris: [uri]).certificate
            let chain = [leaf, ca.certificate]
            let element = ForwardedClientCert.element(presentedURI: "spiffe://td/ns/default/dc/dc1/svc/orders", clientChain: chain)
            let leafPEM = try leaf.serializeAsPEM().pemString
            let chainPEM = try chain.map { try $0.serializeAsPEM().pemString + "\n" }.joined()
            #expect(element.contains(";Cert=\"\(encoded(leafPEM))\";"))
            #expect(element.contains(";Chain=\"\(encoded(chainPEM))\";"))
            let hash = SHA256.hash(data: try leaf.serializeAsPEM().derBytes).map { String(format: "%02x", $0) }.joined()
            #expect(element.hasPrefix("By=spiffe://td/ns/default/dc/dc1/svc/orders;Hash=\(hash);Cert="))
            #expect(element.hasSuffix(";URI=\(uri)" + String(repeating: ";DNS=a.example", count: extra % 3)))
            lengths.insert(try leaf.serializeAsPEM().derBytes.count % 3)
        }
        #expect(lengths.count == 3, "DER lengths with each remainder, so every base64 padding is tried")
    }
}

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
            #expect(element.contains(";Cert=\"\(encoded(leafPEM + "\n"))\";"), "the PEM text ends in a line break, as Envoy's")
            #expect(element.contains(";Chain=\"\(encoded(chainPEM))\";"))
            let hash = SHA256.hash(data: try leaf.serializeAsPEM().derBytes).map { String(format: "%02x", $0) }.joined()
            #expect(element.hasPrefix("By=spiffe://td/ns/default/dc/dc1/svc/orders;Hash=\(hash);Cert="))
            #expect(element.hasSuffix(";URI=\(uri)" + String(repeating: ";DNS=a.example", count: extra % 3)))
            lengths.insert(try leaf.serializeAsPEM().derBytes.count % 3)
        }
        #expect(lengths.count == 3, "DER lengths with each remainder, so every base64 padding is tried")
    }

    /// A certificate holder's names cannot add entries to the element: inside quotes, `\` and
    /// `"` are escaped, so a reader that honours escapes finds the one `URI` the certificate has.
    @Test func aCertificatesNamesCannotCloseTheQuotesEarly() throws {
        let ca = try TestCA()
        let uri = "spiffe://td/ns/default/dc/dc1/svc/web"
        let hostile = #"x\";URI=spiffe://td/ns/default/dc/dc1/svc/admin;a=""#
        let leaf = try ca.issueLeaf(commonName: #"web\",CN=admin"#, dnsNames: [hostile, #"back\slash"#], uris: [uri]).certificate
        let element = ForwardedClientCert.element(presentedURI: "spiffe://td/ns/default/dc/dc1/svc/orders", clientChain: [leaf])
        let pairs = Self.pairs(element)
        #expect(pairs.filter { $0.key == "URI" }.map(\.value) == [uri])
        #expect(pairs.filter { $0.key == "DNS" }.map(\.value) == [hostile, #"back\slash"#])
        #expect(pairs.map(\.key) == ["By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS", "DNS"])
    }

    /// An element's `key=value` pairs as a reader that honours `\` escapes inside quotes reads them.
    static func pairs(_ element: String) -> [(key: String, value: String)] {
        var pairs: [(key: String, value: String)] = []
        var key = ""
        var value = ""
        var inKey = true
        var quoted = false
        var escaping = false
        for character in element {
            if escaping {
                value.append(character)
                escaping = false
            } else if quoted {
                if character == "\\" { escaping = true } else if character == "\"" { quoted = false } else { value.append(character) }
            } else if inKey {
                if character == "=" { inKey = false } else { key.append(character) }
            } else if character == "\"" {
                quoted = true
            } else if character == ";" {
                pairs.append((key, value))
                (key, value, inKey) = ("", "", true)
            } else {
                value.append(character)
            }
        }
        pairs.append((key, value))
        return pairs
    }
}

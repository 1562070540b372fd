import Crypto
import SwiftASN1
import X509

/// The `x-forwarded-client-cert` element for one connection (docs/COMPATIBILITY.md, SNIs and certificates), built once at the
/// handshake: `By=…;Hash=…;Cert="…";Chain="…";Subject="…";URI=…[;DNS=…]`.
public enum ForwardedClientCert {
    /// The field's name as the payloads carry it.
    public static let fieldName = "x-forwarded-client-cert"

    public static func element(presentedURI: String, clientChain: [Certificate]) -> String {
        guard let leaf = clientChain.first else { return "By=\(quoteIfNeeded(presentedURI))" }
        var parts = ["By=\(quoteIfNeeded(presentedURI))"]
        let leafDER = (try? derBytes(leaf)) ?? []
        parts.append("Hash=\(hex(SHA256.hash(data: leafDER)))")
        parts.append("Cert=\"\(percentEncode((try? leaf.serializeAsPEM().pemString) ?? ""))\"")
        let chainPEM = clientChain.compactMap { try? $0.serializeAsPEM().pemString + "\n" }.joined()
        parts.append("Chain=\"\(percentEncode(chainPEM))\"")
        parts.append("Subject=\"\(leaf.subject.description.replacingOccurrences(of: "\"", with: "\\\""))\"")
        let names: [GeneralName] = ((try? leaf.extensions.subjectAlternativeNames) ?? nil).map { Array($0) } ?? []
        for name in names {
            if case .uniformResourceIdentifier(let uri) = name { parts.append("URI=\(quoteIfNeeded(uri))") }
        }
        for name in names {
            if case .dnsName(let dns) = name { parts.append("DNS=\(quoteIfNeeded(dns))") }
        }
        return parts.joined(separator: ";")
    }

    /// The header value handed to the function: the incoming value (unless sanitized) plus our element.
    public static func headerValue(incoming: String?, element: String, sanitize: Bool) -> String? {
        if sanitize { return nil }
        guard let incoming, !incoming.isEmpty else { return element }
        return incoming + "," + element
    }

    static func derBytes(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count * 2)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0x0F, radix: 16, uppercase: true)
            }
        }
        return out
    }

    static func quoteIfNeeded(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == ";" || $0 == "=" || $0 == "\"" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String($0 >> 4, radix: 16) + String($0 & 0x0F, radix: 16) }.joined()
    }
}

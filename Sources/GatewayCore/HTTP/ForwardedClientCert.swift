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
        var cert = Array("Cert=\"".utf8)
        if !leafDER.isEmpty {
            // The PEM text ends with a line break, as Envoy's (`PEM_write_bio_X509`).
            appendPercentEncodedPEM(der: leafDER, to: &cert)
            appendPercentEncoded(UInt8(ascii: "\n"), to: &cert)
        }
        cert.append(UInt8(ascii: "\""))
        parts.append(String(decoding: cert, as: UTF8.self))
        var chain = Array("Chain=\"".utf8)
        for (index, certificate) in clientChain.enumerated() {
            let der = index == 0 ? leafDER : (try? derBytes(certificate)) ?? []
            // One that cannot be serialized is left out, as it was from the PEM text.
            guard !der.isEmpty else { continue }
            appendPercentEncodedPEM(der: der, to: &chain)
            appendPercentEncoded(UInt8(ascii: "\n"), to: &chain)
        }
        chain.append(UInt8(ascii: "\""))
        parts.append(String(decoding: chain, as: UTF8.self))
        parts.append("Subject=\"\(escaped(leaf.subject.description))\"")
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

    /// The certificate's PEM text, as swift-certificates writes it (`-----BEGIN CERTIFICATE-----`,
    /// base64 in lines of 64, `-----END CERTIFICATE-----`, no final line break), percent-encoded:
    /// made from the DER bytes in one pass. Once per mesh connection, but with the string
    /// operations of `PEMDocument.pemString` and a `String` append per byte it was some 1.5 million
    /// instructions, a fair share of a handshake.
    static func appendPercentEncodedPEM(der: [UInt8], to out: inout [UInt8]) {
        out.reserveCapacity(out.count + der.count * 2 + 128)
        for byte in "-----BEGIN CERTIFICATE-----\n".utf8 { appendPercentEncoded(byte, to: &out) }
        var written = 0
        func emit(_ character: UInt8) {
            if written > 0 && written % 64 == 0 { appendPercentEncoded(UInt8(ascii: "\n"), to: &out) }
            appendPercentEncoded(character, to: &out)
            written += 1
        }
        var index = 0
        while index < der.count {
            let first = der[index]
            let second = index + 1 < der.count ? der[index + 1] : 0
            let third = index + 2 < der.count ? der[index + 2] : 0
            emit(base64Alphabet[Int(first >> 2)])
            emit(base64Alphabet[Int((first & 0x03) << 4 | second >> 4)])
            emit(index + 1 < der.count ? base64Alphabet[Int((second & 0x0F) << 2 | third >> 6)] : UInt8(ascii: "="))
            emit(index + 2 < der.count ? base64Alphabet[Int(third & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        for byte in "\n-----END CERTIFICATE-----".utf8 { appendPercentEncoded(byte, to: &out) }
    }

    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// RFC 3986's unreserved bytes as they are, every other byte as `%XX` (upper-case hex).
    static func appendPercentEncoded(_ byte: UInt8, to out: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.append(byte)
        default:
            let digits: StaticString = "0123456789ABCDEF"
            out.append(UInt8(ascii: "%"))
            out.append(digits.utf8Start[Int(byte >> 4)])
            out.append(digits.utf8Start[Int(byte & 0x0F)])
        }
    }

    /// A value with a separator, a quote or a backslash in it, quoted.
    static func quoteIfNeeded(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == ";" || $0 == "=" || $0 == "\"" || $0 == "\\" }) else { return value }
        return "\"" + escaped(value) + "\""
    }

    /// The inside of a quoted value: `\` as `\\`, then `"` as `\"`. With only the quote escaped, a
    /// certificate's `x\";URI=…` (a DNS name, or a subject that swift-certificates writes with
    /// `\"`) would close the quotes early for a reader that honours escapes, and add a `URI` of
    /// the certificate holder's choosing.
    static func escaped(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        let digits: StaticString = "0123456789abcdef"
        var out: [UInt8] = []
        out.reserveCapacity(2 * SHA256.byteCount)
        for byte in digest {
            out.append(digits.utf8Start[Int(byte >> 4)])
            out.append(digits.utf8Start[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

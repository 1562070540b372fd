import Crypto
import Foundation
import LambdaPayload
import SwiftASN1
import X509

/// The function's mTLS data from Parameter Store (docs/COMPATIBILITY.md, What it writes), parsed and checked
/// before anything is served (docs/DECISIONS.md D66): the key belongs to the certificate, the certificate is
/// in its validity period, and every root is a certificate.
public struct MeshTLSData: Sendable, Equatable {
    /// The leaf first, then any intermediates, as PEM (what is presented).
    public var certificateChainPEM: [String]
    public var privateKeyPEM: String
    /// Every root in `rootCertPEM`: all are trust anchors (docs/DECISIONS.md D47).
    public var rootsPEM: [String]
    public var trustDomain: String
    public var leaf: Certificate
    public var roots: [Certificate]

    public var notValidAfter: Date { leaf.notValidAfter }

    public struct Error: Swift.Error, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { message }

        public init(message: String) {
            self.message = message
        }
    }

    public init(json text: String, now: Date) throws(Error) {
        guard let value = try? JSONParser.parse(Array(text.utf8)), value.isObject else {
            throw Error(message: "the value is not a JSON object")
        }
        func field(_ name: String) throws(Error) -> String {
            guard case .string(let text)? = value[name], !text.isEmpty else { throw Error(message: "the value has no \(name)") }
            return text
        }
        let certPEM = try field("certPEM")
        privateKeyPEM = try field("privateKeyPEM")
        let rootText = try field("rootCertPEM")
        trustDomain = try field("trustDomain")

        let chain = Self.certificates(certPEM)
        guard let first = chain.first else { throw Error(message: "certPEM holds no certificate") }
        leaf = first.certificate
        certificateChainPEM = chain.map(\.pem)
        let rootList = Self.certificates(rootText)
        guard !rootList.isEmpty else { throw Error(message: "rootCertPEM holds no certificate") }
        roots = rootList.map(\.certificate)
        rootsPEM = rootList.map(\.pem)

        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
        } catch {
            throw Error(message: "privateKeyPEM is not a private key: \(error)")
        }
        guard key.publicKey == leaf.publicKey else { throw Error(message: "privateKeyPEM is not the key of certPEM") }
        guard leaf.notValidBefore <= now else { throw Error(message: "the certificate is not valid before \(leaf.notValidBefore)") }
        guard now < leaf.notValidAfter else { throw Error(message: "the certificate expired at \(leaf.notValidAfter)") }
    }

    /// Each certificate of a PEM text, with its own PEM block; blocks that are not certificates are skipped.
    static func certificates(_ text: String) -> [(certificate: Certificate, pem: String)] {
        guard let documents = try? PEMDocument.parseMultiple(pemString: text) else { return [] }
        return documents.compactMap { document in
            guard document.discriminator == "CERTIFICATE", let certificate = try? Certificate(derEncoded: document.derBytes) else { return nil }
            return (certificate, document.pemString)
        }
    }

    public static func == (lhs: MeshTLSData, rhs: MeshTLSData) -> Bool {
        lhs.certificateChainPEM == rhs.certificateChainPEM && lhs.privateKeyPEM == rhs.privateKeyPEM
            && lhs.rootsPEM == rhs.rootsPEM && lhs.trustDomain == rhs.trustDomain
    }
}

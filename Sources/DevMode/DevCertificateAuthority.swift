import Crypto
import Foundation
import MeshIdentity
import SwiftASN1
import X509

/// An ephemeral Consul-style connect CA for dev mode: EC P-256, trust domain `<uuid>.consul`, leaves
/// with SPIFFE service-ID URI SANs (see `SPIFFEID`) exactly as Consul's built-in CA issues them. Service
/// leaves also carry their SNI as a DNS name, so `curl --cacert` can verify the gateway by name.
public struct DevCertificateAuthority: Sendable {
    public let trustDomain: String
    public let datacenter: String
    public let certificate: Certificate
    let key: P256.Signing.PrivateKey

    public struct Issued: Sendable {
        public let certificatePEM: String
        public let privateKeyPEM: String
    }

    public init(datacenter: String = "dc1", now: Date = Date()) throws {
        let domain = "\(UUID().uuidString.lowercased()).consul"
        self.trustDomain = domain
        self.datacenter = datacenter
        key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("lambda-gateway dev CA") }
        certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-60),
            notValidAfter: now.addingTimeInterval(30 * 86_400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectAlternativeNames([.uniformResourceIdentifier("spiffe://\(domain)")])
            },
            issuerPrivateKey: .init(key)
        )
    }

    public var pem: String {
        get throws { try certificate.serializeAsPEM().pemString }
    }

    /// The SPIFFE ID of a service in this CA's trust domain and datacenter.
    public func spiffeID(service: String) -> String {
        SPIFFEID(trustDomain: trustDomain, datacenter: datacenter, service: service).description
    }

    /// A 72-hour leaf for `service` (Consul's default leaf lifetime), usable as server and client.
    public func issue(service: String, dnsNames: [String] = [], now: Date = Date()) throws -> Issued {
        let leafKey = P256.Signing.PrivateKey()
        let leaf = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(leafKey.publicKey),
            notValidBefore: now.addingTimeInterval(-60),
            notValidAfter: now.addingTimeInterval(72 * 3600),
            issuer: certificate.subject,
            subject: try DistinguishedName { CommonName(service) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true, keyAgreement: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.uniformResourceIdentifier(spiffeID(service: service))] + dnsNames.map { .dnsName($0) })
            },
            issuerPrivateKey: .init(key)
        )
        return Issued(certificatePEM: try leaf.serializeAsPEM().pemString, privateKeyPEM: leafKey.pemRepresentation)
    }
}

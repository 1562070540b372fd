import Foundation
import MeshIdentity
import NIOSSL
import SwiftASN1
import X509

/// Why a client certificate was refused (docs/DECISIONS.md D20); also the metric label.
public enum ClientCertificateRejection: String, Error, Sendable, CaseIterable {
    case missing = "no_client_certificate"
    case untrusted = "untrusted_client_certificate"
    case wrongUsage = "client_certificate_not_for_client_auth"
    case noServiceIdentity = "no_service_identity"
    case foreignTrustDomain = "foreign_trust_domain"
    case malformed = "malformed_client_certificate"
}

/// Checks a caller's certificate chain against the snapshot's roots and extracts its SPIFFE identity.
public struct ClientCertificateVerifier: Sendable {
    public let roots: [Certificate]
    public let trustDomain: String

    /// Parses the snapshot's root PEMs; a PEM that does not parse is skipped (and cannot anchor anything).
    public init(rootPEMs: [String], trustDomain: String) {
        roots = rootPEMs.compactMap { try? Certificate(pemEncoded: $0) }
        self.trustDomain = trustDomain
    }

    /// Verifies `chain` (leaf first, then what the client sent) at `now`.
    public func verify(_ chain: [Certificate], now: Date = Date()) async -> Result<SPIFFEID, ClientCertificateRejection> {
        guard let leaf = chain.first else { return .failure(.missing) }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy(validationTime: now)
        }
        let result = await verifier.validate(leafCertificate: leaf, intermediates: CertificateStore(chain.dropFirst()))
        guard case .validCertificate = result else { return .failure(.untrusted) }

        do {
            if let usage = try leaf.extensions.extendedKeyUsage {
                guard usage.contains(.clientAuth) || usage.contains(.any) else { return .failure(.wrongUsage) }
            }
            let uris = try leaf.spiffeURIs()
            guard uris.count == 1, let identity = SPIFFEID(parsing: uris[0]) else { return .failure(.noServiceIdentity) }
            guard identity.isInTrustDomain(trustDomain) else { return .failure(.foreignTrustDomain) }
            return .success(identity)
        } catch {
            return .failure(.malformed)
        }
    }

    /// NIOSSL's peer chain as swift-certificates values.
    static func certificates(_ chain: [NIOSSLCertificate]) -> [Certificate]? {
        try? chain.map { try Certificate(derEncoded: try $0.toDERBytes()) }
    }
}

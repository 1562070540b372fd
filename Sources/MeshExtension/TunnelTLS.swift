import Foundation
import MeshIdentity
import NIOSSL
import X509

/// The client side of every tunnel for one version of the mTLS data (docs/DECISIONS.md D64): built
/// once per version and shared by every dial (the reference parsed the PEM and built a pool per
/// connection). The function's leaf is the client certificate; the peer's chain must lead to one
/// of the data's roots, with no host-name check (Consul leaves carry only a URI SAN), and the
/// peer's leaf must then carry the upstream's SPIFFE ID (`checkPeer`).
public final class TunnelTLS: Sendable {
    public let data: MeshTLSData
    /// Counts the versions of the data the extension has loaded (1 for the first).
    public let version: Int
    let context: NIOSSLContext

    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    public init(data: MeshTLSData, version: Int) throws(Error) {
        self.data = data
        self.version = version
        do {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            configuration.certificateVerification = .noHostnameVerification
            // Only the mesh's roots: a certificate from a public CA is no mesh identity.
            configuration.trustRoots = .certificates(try data.rootsPEM.map { try NIOSSLCertificate(bytes: Array($0.utf8), format: .pem) })
            configuration.certificateChain = try data.certificateChainPEM.map { .certificate(try NIOSSLCertificate(bytes: Array($0.utf8), format: .pem)) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(data.privateKeyPEM.utf8), format: .pem))
            // No ALPN (README.md, `lambda-mesh-extension`): the bytes are the function's, whatever protocol they speak.
            configuration.applicationProtocols = []
            // A close waits this long for the peer's close_notify (NIOSSL's default is 5 s): at
            // SHUTDOWN the tunnels still open are closed 200 ms before Lambda's deadline.
            configuration.shutdownTimeout = .milliseconds(150)
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw Error(description: "cannot build TLS from the mTLS data: \(error)")
        }
    }

    /// Whether the data's certificate is still valid at `now`: after that, no new tunnel (docs/DECISIONS.md D65).
    public func isExpired(at now: Date) -> Bool {
        now >= data.notValidAfter
    }

    /// `nil` when the peer's leaf carries exactly the upstream's SPIFFE ID, else why not. An SVID
    /// has exactly one URI SAN (SPIFFE X.509-SVID §2): a leaf with more, or with the right ID
    /// behind another, is refused (the reference compared only the first). The trust domain is
    /// compared without case, the rest byte for byte.
    public static func checkPeer(_ certificate: NIOSSLCertificate, expected: SPIFFEID) -> String? {
        let uris: [String]
        do {
            let parsed = try Certificate(derEncoded: try certificate.toDERBytes())
            let names: [GeneralName] = try parsed.extensions.subjectAlternativeNames.map { Array($0) } ?? []
            uris = names.compactMap { name in
                if case .uniformResourceIdentifier(let uri) = name { return uri }
                return nil
            }
        } catch {
            return "the peer's certificate does not parse: \(error)"
        }
        guard uris.count == 1, let uri = uris.first else {
            return "the peer's certificate has \(uris.count) URI SANs \(uris), not one SPIFFE ID"
        }
        guard Self.sameID(Array(uri.utf8), Array(expected.description.utf8), caseFoldedPrefix: "spiffe://".utf8.count + expected.trustDomain.utf8.count) else {
            return "the peer is \(uri), not \(expected)"
        }
        return nil
    }

    /// Bytes equal, the first `caseFoldedPrefix` (scheme and trust domain) without ASCII case.
    /// Bytes, not Swift's `==`: that compares canonical equivalence, under which a KELVIN SIGN
    /// (U+212A) equals `K`.
    static func sameID(_ actual: [UInt8], _ expected: [UInt8], caseFoldedPrefix: Int) -> Bool {
        guard actual.count == expected.count else { return false }
        func folded(_ byte: UInt8) -> UInt8 { (0x41...0x5A).contains(byte) ? byte | 0x20 : byte }
        for index in actual.indices {
            let equal = index < caseFoldedPrefix ? folded(actual[index]) == folded(expected[index]) : actual[index] == expected[index]
            guard equal else { return false }
        }
        return true
    }
}

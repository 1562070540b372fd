import NIOSSL

/// The roots that Lambda's TLS certificates are checked against, parsed once per client.
///
/// AsyncHTTPClient builds an `NIOSSLContext` per new connection until its context cache holds one,
/// so a burst of requests at start (N callers at once open N connections) builds N contexts, and
/// each connection keeps its own for its life. With `.default` roots each context parses the whole
/// system bundle again: about 1 MB of BoringSSL objects per context, 30 MB for 30 pooled
/// connections (measured with heaptrack; BENCHMARKS.md). Certificates parsed here are shared
/// (reference counted) by every context built from them.
enum TrustRoots {
    /// Where Linux distributions keep the system bundle: the paths NIOSSL's `.default` looks at.
    static let systemBundlePaths = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]

    /// The system bundle plus `caFile`, parsed; `.default` (plus `caFile`, as additional roots
    /// loaded per context) when there is no bundle to parse, as on Darwin.
    static func make(caFile: String?, bundlePaths: [String] = systemBundlePaths) throws -> (roots: NIOSSLTrustRoots, additional: [NIOSSLAdditionalTrustRoots]) {
        var extra: [NIOSSLCertificate] = []
        if let caFile {
            do {
                extra = try NIOSSLCertificate.fromPEMFile(caFile)
            } catch {
                throw TrustRootsError(description: "cannot use the CA file \(caFile): \(error)")
            }
            guard !extra.isEmpty else { throw TrustRootsError(description: "the CA file \(caFile) holds no PEM certificate") }
        }
        #if os(Linux)
        for path in bundlePaths {
            guard let system = try? NIOSSLCertificate.fromPEMFile(path), !system.isEmpty else { continue }
            return (.certificates(system + extra), [])
        }
        #endif
        return (.default, extra.isEmpty ? [] : [.certificates(extra)])
    }
}

/// A CA file that cannot be used, reported when the client is made rather than at the first call.
public struct TrustRootsError: Error, CustomStringConvertible {
    public let description: String
}

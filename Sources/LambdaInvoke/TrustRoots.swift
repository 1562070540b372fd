import NIOSSL
import TLSFiles

/// The roots that Lambda's TLS certificates are checked against, parsed once per client.
///
/// With `.default` roots BoringSSL parses the whole system bundle into every `NIOSSLContext` built
/// from the configuration: about 1 MB of objects per context (measured with heaptrack when the
/// client was AsyncHTTPClient, which built a context per new connection; BENCHMARKS.md). The
/// client builds one context now, and certificates parsed here are shared (reference counted)
/// by any context built from them.
enum TrustRoots {
    /// Where Linux distributions keep the system bundle: the paths NIOSSL's `.default` looks at.
    static let systemBundlePaths = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]

    /// The system bundle plus `caFile` (PEM or DER, read by its content; errors name `setting`),
    /// parsed; `.default` (plus `caFile`, as additional roots loaded per context) when there is no
    /// bundle to parse, as on Darwin.
    static func make(caFile: String?, setting: String = "--lambda-ca-file", bundlePaths: [String] = systemBundlePaths) throws(TLSFileError) -> (
        roots: NIOSSLTrustRoots, additional: [NIOSSLAdditionalTrustRoots]
    ) {
        var extra: [NIOSSLCertificate] = []
        if let caFile { extra = try TLSFile(setting: setting, path: caFile).certificates() }
        #if os(Linux)
            for path in bundlePaths {
                guard let system = try? NIOSSLCertificate.fromPEMFile(path), !system.isEmpty else { continue }
                return (.certificates(system + extra), [])
            }
        #endif
        return (.default, extra.isEmpty ? [] : [.certificates(extra)])
    }
}

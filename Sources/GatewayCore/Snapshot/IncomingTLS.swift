/// The TLS versions and TLS 1.2 cipher suites the mesh listener accepts: the `mesh` config entry's
/// `TLS.Incoming` (docs/DECISIONS.md D21), resolved.
public struct IncomingTLS: Sendable, Hashable {
    public enum Version: Int, Sendable, Comparable {
        case tls12 = 12
        case tls13 = 13

        public static func < (lhs: Version, rhs: Version) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public var minimumVersion = Version.tls12
    public var maximumVersion = Version.tls13
    /// Consul's names of the TLS 1.2 suites allowed, in the entry's order; empty means
    /// `defaultCipherSuites`. TLS 1.3 suites are not configurable.
    public var cipherSuites: [String] = []

    public init() {}

    /// Consul's suite names (its `tlsutil` list) and their IANA code points.
    static let knownCipherSuites: [String: UInt16] = [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": 0xC02B,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": 0xC02C,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 0xC030,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": 0xCCA9,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": 0xCCA8,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": 0xC009,
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": 0xC013,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": 0xC00A,
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": 0xC014,
    ]

    /// **Decision (docs/DECISIONS.md D21):** the TLS 1.2 suites when the mesh entry names none: ECDHE with
    /// AES-GCM or ChaCha20-Poly1305 (AEAD only, as current Envoy releases default to), for ECDSA and
    /// RSA leaves. BoringSSL's own defaults also accept CBC suites, which scanners flag (LUCKY13);
    /// those are used only when the entry names them.
    public static let defaultCipherSuites = [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ]

    /// The IANA code points of the TLS 1.2 suites in use: `cipherSuites`, or the defaults.
    public var cipherSuiteCodePoints: [UInt16] {
        (cipherSuites.isEmpty ? Self.defaultCipherSuites : cipherSuites).compactMap { Self.knownCipherSuites[$0] }
    }

    /// A value of the entry that was not used as written: what is wrong with it, and what is used.
    public struct Correction: Sendable, Hashable {
        /// The field and what is wrong, e.g. `TLSMinVersion TLSv1_0 is below TLS 1.2`.
        public var problem: String
        /// What the gateway does instead, e.g. `using TLSv1_2`.
        public var fallback: String

        /// As logged for the mesh entry.
        public var warning: String { "mesh TLS.Incoming.\(problem); \(fallback)" }
    }

    /// Resolves the entry's strings. `TLS_AUTO` or nothing: TLS 1.2 to 1.3. **Decision (docs/DECISIONS.md D21):** a minimum
    /// below TLS 1.2 is raised to 1.2; unknown versions and suite names are ignored. Each such
    /// correction is returned: the mesh entry logs it as a warning, the static file refuses it.
    public static func resolve(minimum: String, maximum: String, cipherSuites: [String]) -> (IncomingTLS, corrections: [Correction]) {
        var tls = IncomingTLS()
        var corrections: [Correction] = []
        switch minimum {
        case "", "TLS_AUTO", "TLSv1_2": break
        case "TLSv1_3": tls.minimumVersion = .tls13
        case "TLSv1_0", "TLSv1_1": corrections.append(Correction(problem: "TLSMinVersion \(minimum) is below TLS 1.2", fallback: "using TLSv1_2"))
        default: corrections.append(Correction(problem: "TLSMinVersion \(minimum) is not a TLS version", fallback: "using TLSv1_2"))
        }
        switch maximum {
        case "", "TLS_AUTO", "TLSv1_3": break
        case "TLSv1_2": tls.maximumVersion = .tls12
        case "TLSv1_0", "TLSv1_1": corrections.append(Correction(problem: "TLSMaxVersion \(maximum) is below TLS 1.2", fallback: "using TLSv1_3"))
        default: corrections.append(Correction(problem: "TLSMaxVersion \(maximum) is not a TLS version", fallback: "using TLSv1_3"))
        }
        if tls.maximumVersion < tls.minimumVersion {
            corrections.append(Correction(problem: "TLSMaxVersion \(maximum) is below TLSMinVersion \(minimum)", fallback: "using TLSv1_2 to TLSv1_3"))
            tls.minimumVersion = .tls12
            tls.maximumVersion = .tls13
        }
        for name in cipherSuites {
            if knownCipherSuites[name] != nil {
                if !tls.cipherSuites.contains(name) { tls.cipherSuites.append(name) }
            } else {
                corrections.append(Correction(problem: "CipherSuites: \(name) is not a suite Consul knows", fallback: "ignored"))
            }
        }
        return (tls, corrections)
    }
}

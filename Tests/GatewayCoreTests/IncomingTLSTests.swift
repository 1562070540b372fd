import GatewayCore
import Testing

@Suite("The mesh entry's TLS.Incoming (docs/DECISIONS.md D21)")
struct IncomingTLSTests {
    @Test func autoOrNothingIsTLS12To13WithAEADSuitesOnly() {
        for (minimum, maximum) in [("", ""), ("TLS_AUTO", "TLS_AUTO"), ("TLSv1_2", "TLSv1_3")] {
            let (tls, corrections) = IncomingTLS.resolve(minimum: minimum, maximum: maximum, cipherSuites: [])
            let warnings = corrections.map(\.warning)
            #expect(tls == IncomingTLS() && warnings.isEmpty)
        }
        // ECDHE with AES-GCM or ChaCha20-Poly1305, for ECDSA and RSA leaves; no CBC suite.
        #expect(Set(IncomingTLS().cipherSuiteCodePoints) == [0xC02B, 0xC02C, 0xCCA9, 0xC02F, 0xC030, 0xCCA8])
    }

    @Test func versionsBelowTLS12AreRaisedWithAWarning() {
        let (tls, corrections) = IncomingTLS.resolve(minimum: "TLSv1_0", maximum: "TLSv1_2", cipherSuites: [])
        let warnings = corrections.map(\.warning)
        #expect(tls.minimumVersion == .tls12 && tls.maximumVersion == .tls12)
        #expect(warnings.count == 1 && warnings[0].contains("below TLS 1.2"))
        let (unknown, unknownCorrections) = IncomingTLS.resolve(minimum: "SSLv3", maximum: "TLSv1_9", cipherSuites: [])
        #expect(unknown == IncomingTLS() && unknownCorrections.map(\.warning).count == 2)
    }

    @Test func aMaximumBelowTheMinimumFallsBackToTheDefaults() {
        let (tls, corrections) = IncomingTLS.resolve(minimum: "TLSv1_3", maximum: "TLSv1_2", cipherSuites: [])
        let warnings = corrections.map(\.warning)
        #expect(tls == IncomingTLS() && warnings.count == 1)
    }

    @Test func knownSuitesAreKeptInOrderUnknownOnesIgnored() {
        let (tls, corrections) = IncomingTLS.resolve(
            minimum: "", maximum: "",
            cipherSuites: ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"]
        )
        #expect(tls.cipherSuites == ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])
        #expect(tls.cipherSuiteCodePoints == [0xCCA8, 0xC02B])
        let warnings = corrections.map(\.warning)
        #expect(warnings == ["mesh TLS.Incoming.CipherSuites: TLS_RSA_WITH_RC4_128_SHA is not a suite Consul knows; ignored"])
    }
}

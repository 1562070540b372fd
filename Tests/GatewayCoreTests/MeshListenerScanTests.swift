import Foundation
import GatewayCore
import TestSupport
import Testing

/// The mesh listener as outside clients see it (docs/DECISIONS.md D21, D22): curl negotiates
/// HTTP/2 over TLS for a plain `http` service, and testssl.sh finds TLS 1.2 and 1.3 only, no CBC suite
/// and ALPN `h2` and `http/1.1`.
@Suite("The mesh listener seen by curl and testssl.sh", .serialized)
struct MeshListenerScanTests {
    @Test func curlGetsHTTP2ByALPNAndHTTP1WhenItAsks() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            #expect(gateway.tls.snapshots.store.snapshot.services["orders"]?.protocolName == "http")
            let h2 = try await gateway.curl("orders", path: "/h2", httpVersion: "--http2", extra: ["-X", "POST"])
            #expect(h2.status == 201 && h2.headers.hasPrefix("HTTP/2 201"), "\(h2.headers)")
            let h1 = try await gateway.curl("orders", path: "/h1", httpVersion: "--http1.1", extra: ["-X", "POST"])
            #expect(h1.status == 201 && h1.headers.hasPrefix("HTTP/1.1 201"), "\(h1.headers)")
        }
    }

    /// testssl.sh, as Debian installs it (`testssl`) or under its own name.
    static let testssl: String? = {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        for name in ["testssl", "testssl.sh"] {
            for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return "\(directory)/\(name)"
            }
        }
        return nil
    }()

    @Test(.enabled(if: testssl != nil, "testssl.sh is not installed (scripts/install-test-tools.sh installs it; CI runs it)"))
    func testsslFindsModernProtocolsAEADSuitesAndBothALPNProtocols() async throws {
        try await GatewayFixture.with(lambdaHandler: echoPayload) { gateway in
            let json = gateway.files.url.appendingPathComponent("testssl.json").path
            let findings = try await Self.scan(host: gateway.tls.sni("orders"), port: gateway.port, json: json)
            // Protocols.
            for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
                #expect(findings[old]?.hasPrefix("not offered") == true, "\(old): \(findings[old] ?? "no finding")")
            }
            #expect(findings["TLS1_2"]?.hasPrefix("offered") == true, "TLS1_2: \(findings["TLS1_2"] ?? "no finding")")
            #expect(findings["TLS1_3"]?.hasPrefix("offered") == true, "TLS1_3: \(findings["TLS1_3"] ?? "no finding")")
            // Suites, one finding per suite offered ("xc02b  ECDHE-ECDSA-AES128-GCM-SHA256  ECDH 253  AESGCM
            // 128  TLS_ECDHE_..."): every one is AES-GCM or ChaCha20-Poly1305; a CBC suite says "AES".
            let suites = findings.filter { $0.key.hasPrefix("cipher_x") }.map(\.value).sorted()
            let notAEAD = suites.filter { !$0.split(separator: " ").contains { $0 == "AESGCM" || $0 == "ChaCha20" } }
            #expect(notAEAD.isEmpty, "suites other than AES-GCM and ChaCha20-Poly1305: \(notAEAD)")
            #expect(suites.contains { $0.contains("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256") }, "\(suites)")
            #expect(suites.contains { $0.contains("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305") }, "\(suites)")
            // ALPN.
            #expect(findings["ALPN_HTTP2"] == "h2", "ALPN_HTTP2: \(findings["ALPN_HTTP2"] ?? "no finding")")
            #expect(findings["ALPN"]?.contains("http/1.1") == true, "ALPN: \(findings["ALPN"] ?? "no finding")")
        }
    }

    /// Runs the protocol (with ALPN) and per-suite checks against 127.0.0.1:`port` with `host` as
    /// SNI; returns each finding by testssl's id. Debian's testssl.sh (3.0) cannot present a client
    /// certificate, which the listener requires; its checks need none: versions and suites are read
    /// from the ServerHello, and ALPN from a TLS 1.3 handshake, which a client completes (and sees
    /// the ALPN) before the server refuses it for the missing certificate.
    static func scan(host: String, port: Int, json: String) async throws -> [String: String] {
        // At the lowest CPU priority: the scan forks hundreds of openssl processes, which would
        // starve the rest of the suite running beside it on a 2-core machine.
        let run = try await ChildProcess.run([
            "nice", "-n", "19", testssl!, "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none", "--ip", "127.0.0.1",
            "--connect-timeout", "5", "--openssl-timeout", "5", "--protocols", "--each-cipher",
            "--jsonfile", json, "\(host):\(port)",
        ])
        guard let data = FileManager.default.contents(atPath: json),
            let entries = try JSONSerialization.jsonObject(with: data) as? [[String: Any]]
        else {
            throw TestSupportError("testssl.sh wrote no JSON (exit \(run.status)):\n\(run.stdout)\n\(run.stderr)")
        }
        var findings: [String: String] = [:]
        for entry in entries {
            guard let id = entry["id"] as? String, let finding = entry["finding"] as? String else { continue }
            findings[id] = finding
        }
        return findings
    }
}

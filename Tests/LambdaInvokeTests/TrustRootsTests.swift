import Foundation
import NIOSSL
import TLSFiles
import TestSupport
import Testing

@testable import LambdaInvoke

/// The roots are parsed once per client, so that every TLS context AsyncHTTPClient builds for a new
/// connection shares them instead of parsing the system bundle again.
@Suite("Trust roots for the Lambda endpoint")
struct TrustRootsTests {
    @Test func theSystemBundleAndTheCAFileAreParsedOnce() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try TestCA()
        let caFile = try ca.writePEM(to: directory.url)
        let bundle = try directory.file("bundle.pem", contents: try TestCA(commonName: "system root 1").pem + "\n" + TestCA(commonName: "system root 2").pem)

        let (roots, additional) = try TrustRoots.make(caFile: caFile, bundlePaths: [directory.url.appendingPathComponent("missing.pem").path, bundle])
        #if os(Linux)
            guard case .certificates(let certificates) = roots else {
                Issue.record("expected parsed certificates, got \(roots)")
                return
            }
            // The bundle's two roots and the CA file's one, all in one list; nothing left to load per context.
            #expect(certificates.count == 3)
            #expect(certificates.last == (try NIOSSLCertificate.fromPEMFile(caFile)).first)
            #expect(additional.isEmpty)
        #endif
    }

    @Test func withoutABundleThePlatformDefaultIsUsedWithTheCAFileAdded() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let caFile = try TestCA().writePEM(to: directory.url)
        let (roots, additional) = try TrustRoots.make(caFile: caFile, bundlePaths: [directory.url.appendingPathComponent("missing.pem").path])
        #expect(roots == .default)
        #expect(additional == [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))])
    }

    @Test func anUnusableCAFileIsAClearErrorAtStart() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let garbage = try directory.file("garbage.pem", contents: "not a certificate\n")
        let unusable = #expect(throws: TLSFileError.self) { try TrustRoots.make(caFile: garbage, setting: "--ca-file") }
        #expect(unusable?.description.hasPrefix("--ca-file: \(garbage) ") == true, "\(String(describing: unusable))")
        let missing = directory.url.appendingPathComponent("nope.pem").path
        let error = #expect(throws: TLSFileError.self) { try TrustRoots.make(caFile: missing) }
        #expect(error?.description == "--lambda-ca-file: \(missing) does not exist")
    }
}

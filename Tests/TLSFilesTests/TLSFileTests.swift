import Foundation
import NIOSSL
import TestSupport
import Testing

@testable import TLSFiles

/// Key and certificate files are read by their content, whatever they are called (NIOSSL's
/// `.file(path)` takes `.key` for DER and `.pem` for PEM), and a file that cannot be used is an error
/// naming the setting and the file.
@Suite("Key and certificate files")
struct TLSFileTests {
    @Test func aPEMKeyNamedDotKeyAndADERCertificateNamedDotPemLoad() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try TestCA()
        let leaf = try ca.issueLeaf()
        let keyPath = try directory.file("client.key", contents: leaf.keyPEM)
        let caPath = try directory.file("ca.pem", bytes: try ca.nioCertificate.toDERBytes())

        let key = try TLSFile(setting: "CONSUL_CLIENT_KEY", path: keyPath)
        #expect(key.encoding == .pem)
        #expect(try key.privateKey() == NIOSSLPrivateKey(bytes: Array(leaf.keyPEM.utf8), format: .pem))
        let certificate = try TLSFile(setting: "CONSUL_CACERT", path: caPath)
        #expect(certificate.encoding == .der)
        #expect(try certificate.certificates() == [try ca.nioCertificate])
        // The PEM a DER file turns into is the certificate's ordinary PEM.
        #expect(try certificate.certificatePEMs() == [try ca.pem.trimmingCharacters(in: .newlines) + "\n"])
    }

    @Test func aPEMBundleWithTextAroundItGivesEveryCertificate() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (first, second) = (try TestCA(commonName: "first"), try TestCA(commonName: "second"))
        let path = try directory.file("bundle.crt", contents: "# roots\n\(try first.pem)\nsome text\n\(try second.pem)\n")
        #expect(try TLSFile(setting: "CONSUL_CACERT", path: path).certificates() == [try first.nioCertificate, try second.nioCertificate])
    }

    /// (file name, content, what the error says after the path).
    static let unusable: [(String, [UInt8], String)] = [
        ("client.key", Array("hello, not a key\n".utf8), "is neither PEM (no -----BEGIN line) nor DER"),
        ("empty.key", [], "is empty"),
        ("truncated.der", [0x30, 0x82, 0x01], "is not a DER private key"),
        ("garbage.pem", Array("-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n".utf8), "is not a PEM private key"),
    ]

    @Test(arguments: unusable.indices)
    func anUnusableKeyFileNamesTheSettingAndTheFile(_ index: Int) throws {
        let (name, content, problem) = Self.unusable[index]
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.file(name, bytes: content)
        let error = #expect(throws: TLSFileError.self) { try TLSFile(setting: "CONSUL_CLIENT_KEY", path: path).privateKey() }
        #expect(error?.description.hasPrefix("CONSUL_CLIENT_KEY: \(path) \(problem)") == true, "\(String(describing: error))")
    }

    @Test func aMissingFileOrAKeyWhereACertificateBelongsIsNamed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let missing = directory.url.appendingPathComponent("nope.crt").path
        let absent = #expect(throws: TLSFileError.self) { try TLSFile(setting: "CONSUL_CLIENT_CERT", path: missing) }
        #expect(absent?.description == "CONSUL_CLIENT_CERT: \(missing) does not exist")
        let folder = #expect(throws: TLSFileError.self) { try TLSFile(setting: "CONSUL_CACERT", path: directory.url.path) }
        #expect(folder?.code == .unreadable)

        let keyPath = try directory.file("client.crt", contents: try TestCA().issueLeaf().keyPEM)
        let wrong = #expect(throws: TLSFileError.self) { try TLSFile(setting: "CONSUL_CLIENT_CERT", path: keyPath).certificates() }
        #expect(wrong?.description.hasPrefix("CONSUL_CLIENT_CERT: \(keyPath) is not a PEM certificate") == true, "\(String(describing: wrong))")
    }

    /// DER keys as OpenSSL writes them: each structure gets the PEM label that parses back to it.
    @Test(arguments: [
        ("PRIVATE KEY", "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out KEY.pem && openssl pkcs8 -topk8 -nocrypt -in KEY.pem -outform DER -out KEY"),
        ("EC PRIVATE KEY", "openssl ecparam -name prime256v1 -genkey -noout -outform DER -out KEY"),
        ("RSA PRIVATE KEY", "openssl genrsa -traditional -out KEY.pem 2048 2>/dev/null && openssl rsa -traditional -in KEY.pem -outform DER -out KEY"),
    ])
    func aDERKeyBecomesPEMUnderItsStructuresLabel(label: String, command: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.url.appendingPathComponent("service.key").path
        let generated = try await ChildProcess.run(["sh", "-c", command.replacingOccurrences(of: "KEY", with: path)])
        try #require(generated.status == 0, "\(generated.stderr)")
        let file = try TLSFile(setting: "keyFile", path: path)
        #expect(file.encoding == .der)
        let pem = try file.privateKeyPEM()
        #expect(pem.hasPrefix("-----BEGIN \(label)-----\n"), "\(pem)")
        #expect(try NIOSSLPrivateKey(bytes: Array(pem.utf8), format: .pem) == file.privateKey())
    }
}

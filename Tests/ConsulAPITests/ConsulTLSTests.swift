import ConsulAPI
import Foundation
import Logging
import NIOPosix
import NIOSSL
import TLSFiles
import TestSupport
import Testing

/// Consul over HTTPS with a client certificate, from files named as operators name them: the
/// key and certificate files are read by their content, not by their extension.
@Suite("Consul client TLS files", .serialized)
struct ConsulTLSTests {
    /// An HTTPS Consul API test server that requires a client certificate from `ca`, and the files
    /// a client needs: the server's CA as DER in `ca.pem`, a client certificate in `client.crt` and
    /// its PEM key in `client.key` (NIOSSL's `.file` read that as DER and failed every request).
    struct Files {
        let directory: TemporaryDirectory
        let ca: String
        let certificate: String
        let key: String
    }

    static func withHTTPSConsul(_ body: (ConsulTestServer, Files) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        let ca = try TestCA()
        var tls = try ca.issueLeaf().serverTLSConfiguration()
        tls.trustRoots = .certificates([try ca.nioCertificate])
        tls.certificateVerification = .noHostnameVerification  // requires a client certificate
        var options = ConsulTestServer.Options()
        options.tls = tls
        let server = try await ConsulTestServer(options: options)
        let client = try ca.issueLeaf(commonName: "lambda-gateway")
        let files = Files(
            directory: directory,
            ca: try directory.file("ca.pem", bytes: try ca.nioCertificate.toDERBytes()),
            certificate: try directory.file("client.crt", contents: try client.certificatePEM),
            key: try directory.file("client.key", contents: client.keyPEM)
        )
        try await withTeardown {
            try await body(server, files)
        } teardown: {
            await server.shutdown()
            directory.remove()
        }
    }

    static func client(_ environment: [String: String]) throws -> ConsulClient {
        try ConsulClient(configuration: try ConsulConfiguration(environment: environment), eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "consul"))
    }

    @Test func httpsWithAClientCertificateFromDotKeyAndDotCrtFiles() async throws {
        try await Self.withHTTPSConsul { server, files in
            // The CA as CONSUL_CACERT, then from a CONSUL_CAPATH folder (any file name).
            let folder = files.directory.url.appendingPathComponent("cas")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: files.ca, toPath: folder.appendingPathComponent("consul-ca.cer").path)
            for (variable, value) in [("CONSUL_CACERT", files.ca), ("CONSUL_CAPATH", folder.path)] {
                let client = try Self.client([
                    "CONSUL_HTTP_ADDR": server.baseURL, variable: value,
                    "CONSUL_CLIENT_CERT": files.certificate, "CONSUL_CLIENT_KEY": files.key,
                ])
                try await withTeardown {
                    let answer = try await client.send(.GET, "/v1/agent/self", timeout: .seconds(5))
                    #expect(answer.status == 200, "with \(variable)")
                } teardown: {
                    try? await client.shutdown()
                }
            }
            #expect(server.baseURL.hasPrefix("https://"))
            #expect(server.requests.map(\.path) == ["/v1/agent/self", "/v1/agent/self"])
        }
    }

    @Test func withoutTheClientCertificateTheServerRefuses() async throws {
        // The server does require the certificate: the same call without one never arrives.
        try await Self.withHTTPSConsul { server, files in
            let client = try Self.client(["CONSUL_HTTP_ADDR": server.baseURL, "CONSUL_CACERT": files.ca])
            try await withTeardown {
                await #expect(throws: ConsulError.self) { try await client.send(.GET, "/v1/agent/self", timeout: .seconds(5)) }
                #expect(server.requests.isEmpty)
            } teardown: {
                try? await client.shutdown()
            }
        }
    }

    @Test func anUnusableKeyStopsTheClientNamingTheVariableAndFile() async throws {
        try await Self.withHTTPSConsul { server, files in
            let garbage = try files.directory.file("broken.key", contents: "not a key\n")
            let error = #expect(throws: TLSFileError.self) {
                try Self.client(["CONSUL_HTTP_ADDR": server.baseURL, "CONSUL_CLIENT_CERT": files.certificate, "CONSUL_CLIENT_KEY": garbage])
            }
            #expect(error?.description.hasPrefix("CONSUL_CLIENT_KEY: \(garbage) ") == true, "\(String(describing: error))")
            let folder = #expect(throws: TLSFileError.self) {
                try Self.client(["CONSUL_HTTP_ADDR": server.baseURL, "CONSUL_CAPATH": files.directory.url.path])
            }
            // CONSUL_CAPATH reads every file in the folder by content; the key file holds no certificate.
            #expect(folder?.setting == "CONSUL_CAPATH" && folder?.path.hasSuffix(".key") == true, "\(String(describing: folder))")
        }
    }
}

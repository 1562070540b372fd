import Foundation
import MeshIdentity

/// The files dev mode writes and the commands that use them: the CA, one leaf per service, the
/// allowed and the denied caller, and `gateway.yaml` in the static-configuration format.
public struct DevFiles: Sendable {
    public let directory: URL
    public let caFile: String
    public let config: String

    public static func write(ca: DevCertificateAuthority, services: [(name: String, arn: String, format: String, invokeMode: String)], caller: String, denied: String, to directory: URL) throws
        -> DevFiles
    {
        func put(_ name: String, _ text: String, secret: Bool = false) throws -> String {
            let url = directory.appendingPathComponent(name)
            try? FileManager.default.removeItem(at: url)
            try text.write(to: url, atomically: true, encoding: .utf8)
            if secret { try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path) }
            return name
        }
        let caFile = try put("ca.pem", try ca.pem)
        for identity in [caller, denied] {
            let issued = try ca.issue(service: identity)
            _ = try put("\(identity).pem", issued.certificatePEM)
            _ = try put("\(identity)-key.pem", issued.privateKeyPEM, secret: true)
        }
        var yaml = """
            # Written by `lambda-gateway dev`; the same format `lambda-gateway run --config` reads.
            trustDomain: \(ca.trustDomain)
            datacenter: \(ca.datacenter)
            caFile: \(caFile)
            defaultIntentionPolicy: deny
            services:

            """
        for service in services {
            let sni = ServiceSNI.make(service: service.name, datacenter: ca.datacenter, trustDomain: ca.trustDomain)
            let issued = try ca.issue(service: service.name, dnsNames: [sni])
            let cert = try put("\(service.name).pem", issued.certificatePEM)
            let key = try put("\(service.name)-key.pem", issued.privateKeyPEM, secret: true)
            yaml += """
                  - name: \(service.name)
                    arn: \(service.arn)
                    payloadFormat: \(service.format)
                    invokeMode: \(service.invokeMode)
                    certFile: \(cert)
                    keyFile: \(key)
                    intentions:
                      - source: \(caller)
                        action: allow

                """
        }
        let config = try put("gateway.yaml", yaml)
        return DevFiles(directory: directory, caFile: directory.appendingPathComponent(caFile).path, config: directory.appendingPathComponent(config).path)
    }

    /// A complete curl command: verifies the gateway against the CA by its SNI name, presents the
    /// caller's certificate, and resolves the SNI name to the listener.
    public func curl(sni: String, port: Int, host: String, caller: String, path: String) -> String {
        let certificate = directory.appendingPathComponent("\(caller).pem").path
        let key = directory.appendingPathComponent("\(caller)-key.pem").path
        return "curl -sS -i --cacert \(Self.quote(caFile)) --cert \(Self.quote(certificate)) --key \(Self.quote(key)) --resolve \(sni):\(port):\(host) \(Self.quote("https://\(sni):\(port)\(path)"))"
    }

    /// Single-quoted for POSIX shells.
    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}

import Foundation
import NIOSSL
import SwiftASN1

/// A certificate or private-key file that a setting names (`CONSUL_CLIENT_KEY`, `--lambda-ca-file`,
/// a static configuration's `keyFile`), read by its content: PEM or DER, whatever the file is called.
///
/// NIOSSL's `.file(path)` decides PEM or DER from the name and takes `.key` for DER, so a PEM key
/// named `client.key`, the most common name, failed, and only when the first connection was made.
/// Files are read here, once, and a file that cannot be used is an error naming the setting.
public struct TLSFile: Sendable {
    public enum Encoding: Sendable, Hashable {
        case pem
        case der
    }

    /// The setting that named the file, for errors.
    public let setting: String
    public let path: String
    public let bytes: [UInt8]
    public let encoding: Encoding

    /// Reads `path` and tells PEM (a `-----BEGIN` line anywhere: PEM files may carry text before the
    /// block) from DER (an ASN.1 SEQUENCE).
    public init(setting: String, path: String) throws(TLSFileError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            let problem =
                if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { "does not exist" } else if isDirectory.boolValue { "is a directory" } else { "cannot be read" }
            throw TLSFileError(.unreadable, setting: setting, path: path, problem)
        }
        try self.init(setting: setting, path: path, bytes: Array(data))
    }

    public init(setting: String, path: String, bytes: [UInt8]) throws(TLSFileError) {
        self.setting = setting
        self.path = path
        self.bytes = bytes
        if bytes.isEmpty {
            throw TLSFileError(.notPEMOrDER, setting: setting, path: path, "is empty")
        } else if Self.containsPEMBlock(bytes) {
            encoding = .pem
        } else if bytes[0] == 0x30 {
            encoding = .der
        } else {
            throw TLSFileError(.notPEMOrDER, setting: setting, path: path, "is neither PEM (no -----BEGIN line) nor DER")
        }
    }

    /// Every certificate in the file: each block of a PEM bundle, or the one DER certificate.
    public func certificates() throws(TLSFileError) -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            switch encoding {
            case .pem: certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
            case .der: certificates = [try NIOSSLCertificate(bytes: bytes, format: .der)]
            }
        } catch {
            throw fail(.badCertificate, "is not a \(encoding == .pem ? "PEM" : "DER") certificate (\(error))")
        }
        guard !certificates.isEmpty else { throw fail(.badCertificate, "holds no CERTIFICATE block") }
        return certificates
    }

    /// The file's private key (PKCS#8, SEC1 or PKCS#1; the first key block of a PEM file).
    public func privateKey() throws(TLSFileError) -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(bytes: bytes, format: encoding == .pem ? .pem : .der)
        } catch {
            throw fail(.badPrivateKey, "is not a \(encoding == .pem ? "PEM" : "DER") private key (\(error))")
        }
    }

    /// Each certificate as PEM text, for what keeps certificates as PEM (the static configuration's
    /// snapshot): PEM blocks re-encoded from what was parsed, so a DER file reads like a PEM one.
    public func certificatePEMs() throws(TLSFileError) -> [String] {
        var pems: [String] = []
        for certificate in try certificates() {
            do {
                pems.append(Self.pem(label: "CERTIFICATE", der: try certificate.toDERBytes()))
            } catch {
                throw fail(.badCertificate, "holds a certificate that cannot be encoded (\(error))")
            }
        }
        return pems
    }

    /// The private key as PEM text: the file itself when it is PEM (checked to parse), the DER key
    /// under the label its structure calls for otherwise.
    public func privateKeyPEM() throws(TLSFileError) -> String {
        _ = try privateKey()
        switch encoding {
        case .pem:
            return String(decoding: bytes, as: UTF8.self)
        case .der:
            guard let label = Self.pemLabel(ofDERPrivateKey: bytes) else {
                throw fail(.badPrivateKey, "is a DER key of a structure other than PKCS#8, SEC1 or PKCS#1")
            }
            return Self.pem(label: label, der: bytes)
        }
    }

    // MARK: Encodings

    private static func containsPEMBlock(_ bytes: [UInt8]) -> Bool {
        let marker = Array("-----BEGIN ".utf8)
        guard bytes.count >= marker.count else { return false }
        return (0...(bytes.count - marker.count)).contains { start in bytes[start..<(start + marker.count)].elementsEqual(marker) }
    }

    /// The three private-key structures differ in what follows their version INTEGER: PKCS#8 an
    /// AlgorithmIdentifier SEQUENCE, SEC1 (EC) the key as an OCTET STRING, PKCS#1 (RSA) the modulus.
    static func pemLabel(ofDERPrivateKey der: [UInt8]) -> String? {
        guard let node = try? DER.parse(der), case .constructed(let children) = node.content else { return nil }
        var elements = children.makeIterator()
        guard elements.next()?.identifier == .integer, let second = elements.next() else { return nil }
        switch second.identifier {
        case .sequence: return "PRIVATE KEY"
        case .octetString: return "EC PRIVATE KEY"
        case .integer: return "RSA PRIVATE KEY"
        default: return nil
        }
    }

    static func pem(label: String, der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(base64)\n-----END \(label)-----\n"
    }

    private func fail(_ code: TLSFileError.Code, _ problem: String) -> TLSFileError {
        TLSFileError(code, setting: setting, path: path, problem)
    }
}

/// A key or certificate file that cannot be used: which setting named it, the file, and what is wrong.
public struct TLSFileError: Error, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        case unreadable
        case notPEMOrDER
        case badCertificate
        case badPrivateKey
    }

    public var code: Code
    public var setting: String
    public var path: String
    public var problem: String

    public init(_ code: Code, setting: String, path: String, _ problem: String) {
        self.code = code
        self.setting = setting
        self.path = path
        self.problem = problem
    }

    /// `CONSUL_CLIENT_KEY: /etc/consul/client.key is not a PEM private key (...)`.
    public var description: String { "\(setting): \(path) \(problem)" }
}

import AWSAPI
import ConsulAPI
import Foundation
import LambdaPayload
import SwiftASN1
import X509

/// The mTLS data a Lambda function reads from Parameter Store to call into the mesh
/// (docs/COMPATIBILITY.md, What it writes), in the reference's exact JSON keys and order.
public struct ExtensionData: Sendable, Hashable {
    public var privateKeyPEM: String
    public var certPEM: String
    public var rootCertPEM: String
    public var trustDomain: String

    public init(privateKeyPEM: String, certPEM: String, rootCertPEM: String, trustDomain: String) {
        self.privateKeyPEM = privateKeyPEM
        self.certPEM = certPEM
        self.rootCertPEM = rootCertPEM
        self.trustDomain = trustDomain
    }

    /// The parameter's value. `peers` is left out, as the reference does when it is empty.
    public var json: String {
        JSONValue.object([
            JSONMember("privateKeyPEM", .string(privateKeyPEM)),
            JSONMember("certPEM", .string(certPEM)),
            JSONMember("rootCertPEM", .string(rootCertPEM)),
            JSONMember("trustDomain", .string(trustDomain)),
        ]).jsonText
    }

    /// A stored value, or nil when it is not the documented JSON.
    public init?(json text: String) {
        guard let value = try? JSONParser.parse(Array(text.utf8)),
            case .string(let key)? = value["privateKeyPEM"], case .string(let certificate)? = value["certPEM"],
            case .string(let roots)? = value["rootCertPEM"], case .string(let trustDomain)? = value["trustDomain"]
        else { return nil }
        self.init(privateKeyPEM: key, certPEM: certificate, rootCertPEM: roots, trustDomain: trustDomain)
    }

    /// Every current root, the active one first, each ending in a newline (docs/DECISIONS.md D47: functions
    /// keep trusting mesh peers while the CA rotates). `activeOnly`: the reference's form, the
    /// fallback for values over the tier's size.
    public static func rootsPEM(_ roots: CARoots, activeOnly: Bool = false) -> String {
        let active = roots.Roots.filter { $0.ID == roots.ActiveRootID }
        let others = activeOnly ? [] : roots.Roots.filter { $0.ID != roots.ActiveRootID }
        return (active + others).map { $0.RootCert.hasSuffix("\n") ? $0.RootCert : $0.RootCert + "\n" }.joined()
    }
}

/// When the stored data must be written again, and in which form it fits (docs/DECISIONS.md D46).
public struct ExtensionDataPolicy: Sendable, Hashable {
    /// `CONSUL_EXTENSION_DATA_TIER`; nil: Standard, and never named in the call.
    public var tier: ParameterTier?

    public init(tier: ParameterTier? = nil) {
        self.tier = tier
    }

    /// The largest value written: the Standard tier's 4 KB unless a tier is configured.
    public var limit: Int { (tier ?? .standard).maximumValueBytes }

    /// The tier to name in `PutParameter`: only for a value over the Standard limit (docs/COMPATIBILITY.md, Environment).
    public func tier(forValueOfSize size: Int) -> ParameterTier? {
        size > ParameterTier.standard.maximumValueBytes ? tier : nil
    }

    /// Why the stored value (nil: missing) must be rewritten, or nil when it is still good.
    public func refreshReason(stored: String?, roots: CARoots, now: Date) -> String? {
        guard let stored else { return "missing" }
        guard let data = ExtensionData(json: stored) else { return "not the documented JSON" }
        if data.trustDomain != roots.TrustDomain { return "trust domain changed" }
        // The roots a value written now would carry: every root, or the active one when every
        // root would not fit (so that a value in that form is not rewritten on every sync).
        var fresh = data
        fresh.rootCertPEM = ExtensionData.rootsPEM(roots)
        if fresh.json.utf8.count > limit { fresh.rootCertPEM = ExtensionData.rootsPEM(roots, activeOnly: true) }
        if data.rootCertPEM != fresh.rootCertPEM { return "CA roots changed" }
        // The leaf comes first; intermediates may follow it.
        guard let leaf = try? PEMDocument.parseMultiple(pemString: data.certPEM).first,
            let certificate = try? Certificate(derEncoded: leaf.derBytes)
        else { return "certificate unreadable" }
        let lifetime = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        let left = certificate.notValidAfter.timeIntervalSince(now)
        if left < lifetime / 2 { return "certificate past half its lifetime" }
        if left < 24 * 3600 { return "certificate expires within 24 h" }
        return nil
    }

    /// The value to write for this leaf: every root if it fits the limit, else the active root
    /// only (with a warning), else nil (an error for the service).
    public func value(leaf: LeafCertificate, roots: CARoots) -> (data: ExtensionData, warning: String?)? {
        var data = ExtensionData(privateKeyPEM: leaf.PrivateKeyPEM, certPEM: leaf.CertPEM, rootCertPEM: ExtensionData.rootsPEM(roots), trustDomain: roots.TrustDomain)
        if data.json.utf8.count <= limit { return (data, nil) }
        data.rootCertPEM = ExtensionData.rootsPEM(roots, activeOnly: true)
        guard data.json.utf8.count <= limit else { return nil }
        return (data, "all CA roots do not fit the \(limit)-byte parameter limit; writing the active root only (set CONSUL_EXTENSION_DATA_TIER=advanced to keep every root)")
    }
}

extension ParameterTier {
    /// `CONSUL_EXTENSION_DATA_TIER`'s value, case-insensitively (`standard`, `advanced`,
    /// `intelligent-tiering`).
    public init?(setting: String) {
        switch setting.lowercased() {
        case "standard": self = .standard
        case "advanced": self = .advanced
        case "intelligent-tiering": self = .intelligentTiering
        default: return nil
        }
    }
}

import AWSSigV4
import Foundation

/// The shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`), then the
/// config file (`AWS_CONFIG_FILE`, else `~/.aws/config`), profile `AWS_PROFILE` or `default`.
///
/// Static keys only: `role_arn`, `source_profile`, `credential_process` and SSO are not supported
/// and are reported as such.
public struct SharedFileProvider: CredentialProvider {
    public let name = "shared-credentials-file"
    let environment: Environment

    public init(environment: Environment) {
        self.environment = environment
    }

    var profile: String { environment.nonEmpty("AWS_PROFILE") ?? "default" }

    var credentialsPath: String? {
        environment.nonEmpty("AWS_SHARED_CREDENTIALS_FILE") ?? environment.nonEmpty("HOME").map { "\($0)/.aws/credentials" }
    }

    var configPath: String? {
        environment.nonEmpty("AWS_CONFIG_FILE") ?? environment.nonEmpty("HOME").map { "\($0)/.aws/config" }
    }

    public var isConfigured: Bool {
        [credentialsPath, configPath].contains { path in path.map { FileManager.default.fileExists(atPath: $0) } ?? false }
    }

    public func fetch() async throws -> Credentials {
        var problems: [String] = []
        for (path, section) in [(credentialsPath, profile), (configPath, profile == "default" ? "default" : "profile \(profile)")] {
            guard let path, FileManager.default.fileExists(atPath: path) else { continue }
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                problems.append("\(path): cannot be read (\(error))")
                continue
            }
            guard let keys = INIFile.parse(text)[section] else {
                problems.append("\(path): no [\(section)] section")
                continue
            }
            if let id = keys["aws_access_key_id"], let secret = keys["aws_secret_access_key"], !id.isEmpty, !secret.isEmpty {
                let token = keys["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
                return Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
            }
            let unsupported = ["role_arn", "credential_process", "sso_start_url", "sso_session"].filter { keys[$0] != nil }
            if unsupported.isEmpty {
                problems.append("\(path) [\(section)]: aws_access_key_id and aws_secret_access_key are required")
            } else {
                problems.append("\(path) [\(section)]: \(unsupported.joined(separator: ", ")) is not supported; use static keys")
            }
        }
        throw CredentialsError(.providerFailed, provider: name, problems.joined(separator: "; "))
    }
}

/// The INI dialect of the AWS shared files: `[section]`, `key = value`, `#` and `;` comments,
/// keys case-insensitive.
enum INIFile {
    static func parse(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                current = name
                sections[name, default: [:]] = sections[name] ?? [:]
                continue
            }
            guard let section = current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            // An inline comment needs white space before it, as in botocore.
            for marker in [" #", " ;"] {
                if let range = value.range(of: marker) {
                    value = value[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
                }
            }
            sections[section]?[key] = value
        }
        return sections
    }
}

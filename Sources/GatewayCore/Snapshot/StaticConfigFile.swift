import ConsulAPI
import Foundation
import LambdaInvoke
import LambdaPayload
import MeshIdentity
import TLSFiles
import X509
import Yams

/// Reads a `StaticConfig` from YAML (format in the README and `conf/gateway.example.yaml`).
/// Strict: unknown keys, wrong types and bad values are errors naming the file, line, key and
/// problem. Relative file paths are relative to the configuration file.
public enum StaticConfigFile {
    public static func load(path: String) throws(StaticConfigError) -> StaticConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw StaticConfigError(file: path, path: "", message: "cannot read the file (\(error.localizedDescription))")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        return try parse(text, file: path, directory: directory)
    }

    public static func parse(_ text: String, file: String, directory: URL) throws(StaticConfigError) -> StaticConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw StaticConfigError(file: file, path: "", message: "not valid YAML: \(error)")
        }
        guard let root else { throw StaticConfigError(file: file, path: "", message: "the file is empty") }
        return try Reader(file: file, directory: directory).config(root)
    }

    struct Reader {
        let file: String
        let directory: URL

        func fail(_ node: Node?, _ path: String, _ message: String) -> StaticConfigError {
            StaticConfigError(file: file, line: node?.mark?.line, column: node?.mark?.column, path: path, message: message)
        }

        func config(_ root: Node) throws(StaticConfigError) -> StaticConfig {
            let keys = try mapping(
                root, "",
                allowed: ["trustDomain", "datacenter", "caFile", "defaultIntentionPolicy", "sanitizeForwardedClientCert", "tls", "accessLogs", "services"]
            )
            let trustDomain = try required(keys, "trustDomain", in: root, "")
            guard trustDomain.hasSuffix(".consul") || trustDomain.contains(".") else {
                throw fail(keys["trustDomain"], "trustDomain", "\"\(trustDomain)\" is not a trust domain (Consul's look like <uuid>.consul)")
            }
            let datacenter = try required(keys, "datacenter", in: root, "")
            let caFile = try required(keys, "caFile", in: root, "")
            let rootPEMs = try certificates(inFile: caFile, node: keys["caFile"], path: "caFile")
            let policyText = try string(keys["defaultIntentionPolicy"], "defaultIntentionPolicy") ?? "deny"
            guard let policy = IntentionAction(rawValue: policyText) else {
                throw fail(keys["defaultIntentionPolicy"], "defaultIntentionPolicy", "must be allow or deny, not \"\(policyText)\"")
            }
            let sanitize = try bool(keys["sanitizeForwardedClientCert"], "sanitizeForwardedClientCert") ?? false
            let incomingTLS = try keys["tls"].map { node throws(StaticConfigError) in try tls(node, "tls") } ?? IncomingTLS()
            guard let servicesNode = keys["services"] else { throw fail(root, "services", "is required (a list of services)") }
            guard let list = servicesNode.sequence else { throw fail(servicesNode, "services", "must be a list") }
            var services: [StaticConfig.Service] = []
            var names: Set<String> = []
            for (index, node) in list.enumerated() {
                let service = try self.service(node, "services[\(index)]")
                guard names.insert(service.name).inserted else { throw fail(node, "services[\(index)].name", "\"\(service.name)\" is listed twice") }
                services.append(service)
            }
            var config = StaticConfig(
                trustDomain: trustDomain, datacenter: datacenter, rootPEMs: rootPEMs, defaultIntentionPolicy: policy,
                sanitizeForwardedClientCert: sanitize, services: services
            )
            config.incomingTLS = incomingTLS
            config.accessLogs = try keys["accessLogs"].map { node throws(StaticConfigError) in try accessLogs(node, "accessLogs") }
            config.file = file
            return config
        }

        /// `accessLogs:` with the `AccessLogs` fields of Consul's `proxy-defaults` (docs/COMPATIBILITY.md, `AccessLogs`), in
        /// camelCase; the formats are compiled, and refused with the access log's own error, when
        /// the snapshot is published.
        func accessLogs(_ node: Node, _ path: String) throws(StaticConfigError) -> AccessLogsConfig {
            let keys = try mapping(node, path, allowed: ["enabled", "disableListenerLogs", "type", "path", "jsonFormat", "textFormat"])
            let type = try string(keys["type"], "\(path).type") ?? ""
            guard ["", "stdout", "stderr", "file"].contains(type) else {
                throw fail(keys["type"], "\(path).type", "must be stdout, stderr or file, not \"\(type)\"")
            }
            let file = try string(keys["path"], "\(path).path") ?? ""
            if type == "file" && file.isEmpty { throw fail(node, "\(path).path", "is required with type: file") }
            let json = try string(keys["jsonFormat"], "\(path).jsonFormat") ?? ""
            let text = try string(keys["textFormat"], "\(path).textFormat") ?? ""
            if !json.isEmpty && !text.isEmpty { throw fail(node, path, "jsonFormat and textFormat cannot both be set") }
            do {
                if !json.isEmpty { _ = try AccessLogFormat(json: json) }
                if !text.isEmpty { _ = try AccessLogFormat(text: text) }
            } catch {
                throw fail(keys[json.isEmpty ? "textFormat" : "jsonFormat"], "\(path).\(json.isEmpty ? "textFormat" : "jsonFormat")", "\(error)")
            }
            return AccessLogsConfig(
                Enabled: try bool(keys["enabled"], "\(path).enabled") ?? true,
                DisableListenerLogs: try bool(keys["disableListenerLogs"], "\(path).disableListenerLogs") ?? false,
                Type: type,
                Path: file.isEmpty || file.hasPrefix("/") ? file : directory.appendingPathComponent(file).path,
                JSONFormat: json,
                TextFormat: text
            )
        }

        /// `tls:` with the mesh entry's `TLS.Incoming` values, in Consul's names. What the mesh
        /// entry would correct with a warning is an error here: the file is checked strictly.
        func tls(_ node: Node, _ path: String) throws(StaticConfigError) -> IncomingTLS {
            let keys = try mapping(node, path, allowed: ["minVersion", "maxVersion", "cipherSuites"])
            let (tls, corrections) = IncomingTLS.resolve(
                minimum: try string(keys["minVersion"], "\(path).minVersion") ?? "",
                maximum: try string(keys["maxVersion"], "\(path).maxVersion") ?? "",
                cipherSuites: try stringList(keys["cipherSuites"], "\(path).cipherSuites")
            )
            if let correction = corrections.first { throw fail(node, path, correction.problem) }
            return tls
        }

        func service(_ node: Node, _ path: String) throws(StaticConfigError) -> StaticConfig.Service {
            let keys = try mapping(
                node, path,
                allowed: ["name", "arn", "payloadFormat", "payloadPassthrough", "invocationMode", "invokeMode", "protocol", "requestTimeout", "subsets", "certFile", "keyFile", "intentions"]
            )
            let name = try required(keys, "name", in: node, path)
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                throw fail(keys["name"], "\(path).name", "\"\(name)\" is not a Consul service name (letters, digits, - and _)")
            }
            let arnText = try required(keys, "arn", in: node, path)
            let function: FunctionARN
            do {
                function = try FunctionARN(parsing: arnText)
            } catch {
                throw fail(keys["arn"], "\(path).arn", error.description)
            }
            let formatText = try string(keys["payloadFormat"], "\(path).payloadFormat") ?? "envoy"
            guard let format = PayloadFormat(configValue: formatText) else {
                throw fail(keys["payloadFormat"], "\(path).payloadFormat", "unknown format \"\(formatText)\" (\(PayloadFormat.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let mode = try string(keys["invocationMode"], "\(path).invocationMode") ?? "synchronous"
            let invocation: InvocationType
            switch mode.lowercased() {
            case "synchronous": invocation = .requestResponse
            case "asynchronous": invocation = .event
            default: throw fail(keys["invocationMode"], "\(path).invocationMode", "must be synchronous or asynchronous, not \"\(mode)\"")
            }
            let invokeModeText = try string(keys["invokeMode"], "\(path).invokeMode") ?? "BUFFERED"
            guard let invokeMode = InvokeMode(configValue: invokeModeText) else {
                throw fail(keys["invokeMode"], "\(path).invokeMode", "must be BUFFERED or RESPONSE_STREAM, not \"\(invokeModeText)\"")
            }
            if invokeMode == .responseStream && invocation == .event {
                throw fail(keys["invokeMode"], "\(path).invokeMode", "RESPONSE_STREAM cannot be used with invocationMode asynchronous")
            }
            let protocolName = (try string(keys["protocol"], "\(path).protocol") ?? "http").lowercased()
            guard ["http", "http2", "grpc"].contains(protocolName) else {
                throw fail(keys["protocol"], "\(path).protocol", "must be http, http2 or grpc, not \"\(protocolName)\"")
            }
            var timeout: Duration?
            if let text = try string(keys["requestTimeout"], "\(path).requestTimeout") {
                do {
                    timeout = try GoDuration.parse(text)
                } catch {
                    throw fail(keys["requestTimeout"], "\(path).requestTimeout", "\"\(text)\" is not a duration like 15s or 2m")
                }
            }
            let subsets = try stringList(keys["subsets"], "\(path).subsets")
            let certFile = try required(keys, "certFile", in: node, path)
            let keyFile = try required(keys, "keyFile", in: node, path)
            let certificate = try pem(keys["certFile"], "\(path).certFile", file: certFile) { file throws(TLSFileError) in try file.certificatePEMs().joined() }
            let key = try pem(keys["keyFile"], "\(path).keyFile", file: keyFile) { file throws(TLSFileError) in try file.privateKeyPEM() }
            var intentions: [IntentionRule] = []
            if let intentionsNode = keys["intentions"] {
                guard let list = intentionsNode.sequence else { throw fail(intentionsNode, "\(path).intentions", "must be a list") }
                for (index, item) in list.enumerated() {
                    intentions.append(try intention(item, "\(path).intentions[\(index)]"))
                }
            }
            return StaticConfig.Service(
                name: name,
                lambda: LambdaSettings(
                    function: function, payloadFormat: format, passthrough: try bool(keys["payloadPassthrough"], "\(path).payloadPassthrough") ?? false, invocationType: invocation,
                    invokeMode: invokeMode),
                protocolName: protocolName, requestTimeout: timeout, subsets: subsets, certificatePEM: certificate, privateKeyPEM: key, intentions: intentions
            )
        }

        /// `{source, action}` or `{source, permissions: [{action, http: {pathExact|pathPrefix|pathRegex, methods}}]}`.
        func intention(_ node: Node, _ path: String) throws(StaticConfigError) -> IntentionRule {
            let keys = try mapping(node, path, allowed: ["source", "action", "permissions"])
            let source = try required(keys, "source", in: node, path)
            let action = try string(keys["action"], "\(path).action")
            var permissions: [IntentionPermissionRule] = []
            if let list = keys["permissions"] {
                guard let items = list.sequence, !items.isEmpty else { throw fail(list, "\(path).permissions", "must be a non-empty list") }
                for (index, item) in items.enumerated() {
                    permissions.append(try permission(item, "\(path).permissions[\(index)]"))
                }
            }
            switch (action, permissions.isEmpty) {
            case (nil, true): throw fail(node, path, "needs an action (allow or deny) or permissions")
            case (_?, false): throw fail(keys["action"], "\(path).action", "an intention has either an action or permissions, not both")
            case (let action?, true):
                guard let parsed = IntentionAction(rawValue: action) else { throw fail(keys["action"], "\(path).action", "must be allow or deny, not \"\(action)\"") }
                return StaticConfig.intention(from: source, action: parsed)
            case (nil, false):
                return StaticConfig.intention(from: source, action: nil, permissions: permissions)
            }
        }

        func permission(_ node: Node, _ path: String) throws(StaticConfigError) -> IntentionPermissionRule {
            let keys = try mapping(node, path, allowed: ["action", "http"])
            let actionText = try required(keys, "action", in: node, path)
            guard let action = IntentionAction(rawValue: actionText) else { throw fail(keys["action"], "\(path).action", "must be allow or deny, not \"\(actionText)\"") }
            guard let httpNode = keys["http"] else { return IntentionPermissionRule(action: action) }
            let http = try mapping(httpNode, "\(path).http", allowed: ["pathExact", "pathPrefix", "pathRegex", "methods"])
            let rule = HTTPRule(
                path: try pathMatch(http, in: httpNode, "\(path).http"),
                methods: try stringList(http["methods"], "\(path).http.methods").map { $0.uppercased() }
            )
            return IntentionPermissionRule(action: action, http: rule)
        }

        /// At most one of `pathExact`, `pathPrefix` and `pathRegex`, not empty; none: any path.
        func pathMatch(_ http: [String: Node], in node: Node, _ path: String) throws(StaticConfigError) -> PathMatch? {
            let kinds: [(key: String, match: (String) -> PathMatch)] = [("pathExact", PathMatch.exact), ("pathPrefix", PathMatch.prefix), ("pathRegex", PathMatch.regex)]
            let given = kinds.filter { http[$0.key] != nil }
            guard given.count <= 1 else { throw fail(node, path, "use at most one of pathExact, pathPrefix and pathRegex") }
            guard let kind = given.first else { return nil }
            let keyPath = "\(path).\(kind.key)"
            // An empty one would have meant any path: for an allow, access the file never meant to give.
            guard let text = try string(http[kind.key], keyPath), !text.isEmpty else { throw fail(http[kind.key], keyPath, "must not be empty (leave it out to match any path)") }
            return kind.match(text)
        }

        // MARK: Typed access

        func mapping(_ node: Node, _ path: String, allowed: Set<String>) throws(StaticConfigError) -> [String: Node] {
            guard let mapping = node.mapping else { throw fail(node, path, "must be a mapping of keys to values") }
            var result: [String: Node] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { throw fail(key, path, "keys must be strings") }
                let keyPath = path.isEmpty ? name : "\(path).\(name)"
                guard allowed.contains(name) else {
                    let suggestion = allowed.first { $0.lowercased() == name.lowercased() }.map { " (did you mean \($0)?)" } ?? ""
                    throw fail(key, keyPath, "unknown key\(suggestion); known keys: \(allowed.sorted().joined(separator: ", "))")
                }
                guard result[name] == nil else { throw fail(key, keyPath, "appears twice") }
                result[name] = value
            }
            return result
        }

        func required(_ keys: [String: Node], _ name: String, in node: Node, _ path: String) throws(StaticConfigError) -> String {
            let keyPath = path.isEmpty ? name : "\(path).\(name)"
            guard let value = try string(keys[name], keyPath), !value.isEmpty else { throw fail(keys[name] ?? node, keyPath, "is required") }
            return value
        }

        func string(_ node: Node?, _ path: String) throws(StaticConfigError) -> String? {
            guard let node else { return nil }
            guard let scalar = node.scalar else { throw fail(node, path, "must be a single value, not a list or mapping") }
            return scalar.string
        }

        func bool(_ node: Node?, _ path: String) throws(StaticConfigError) -> Bool? {
            guard let node else { return nil }
            guard node.scalar != nil, let value = node.bool else { throw fail(node, path, "must be true or false") }
            return value
        }

        func stringList(_ node: Node?, _ path: String) throws(StaticConfigError) -> [String] {
            guard let node else { return [] }
            guard let items = node.sequence else { throw fail(node, path, "must be a list") }
            var result: [String] = []
            for (index, item) in items.enumerated() {
                guard let text = try string(item, "\(path)[\(index)]") else { continue }
                result.append(text)
            }
            return result
        }

        // MARK: Files

        /// A key or certificate file, read by its content (PEM or DER, whatever its name) and turned
        /// into the PEM the snapshot keeps; errors name the key and the file.
        func pem<T>(_ node: Node?, _ path: String, file: String, _ convert: (TLSFile) throws(TLSFileError) -> T) throws(StaticConfigError) -> T {
            let url = file.hasPrefix("/") ? URL(fileURLWithPath: file) : directory.appendingPathComponent(file)
            do {
                return try convert(try TLSFile(setting: path, path: url.path))
            } catch {
                throw fail(node, path, "\(error.path) \(error.problem)")
            }
        }

        /// Each certificate of a bundle, parsed (so a bad root is reported here, not at a handshake).
        func certificates(inFile file: String, node: Node?, path: String) throws(StaticConfigError) -> [String] {
            let pems = try pem(node, path, file: file) { file throws(TLSFileError) in try file.certificatePEMs() }
            for (index, pem) in pems.enumerated() {
                do {
                    _ = try Certificate(pemEncoded: pem)
                } catch {
                    throw fail(node, path, "certificate \(index + 1) in \(file) does not parse (\(error))")
                }
            }
            return pems
        }
    }
}

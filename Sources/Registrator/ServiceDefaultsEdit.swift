import ConsulAPI

/// The read-modify-write of a service-defaults entry (docs/DECISIONS.md D55): everything an
/// operator set stays (other fields, `Meta`, other extensions); the registrator owns only `Protocol`
/// and the `builtin/aws/lambda` extension.
public enum ServiceDefaultsEdit {
    /// The entry to `PUT /v1/config` for `service`, given the one Consul holds now (nil: none).
    public static func entry(for service: DesiredService, current: FreeFormJSON?) -> FreeFormJSON {
        var members: [String: FreeFormJSON] = [:]
        if case .object(let existing)? = current { members = existing }
        // Indexes are Consul's; `cas` carries the one the write expects.
        members["CreateIndex"] = nil
        members["ModifyIndex"] = nil
        members["Kind"] = .string("service-defaults")
        members["Name"] = .string(service.name)
        members["Protocol"] = .string("http")
        if !service.scope.isDefault {
            members["Partition"] = .string(service.scope.partition)
            members["Namespace"] = .string(service.scope.namespace)
        }
        var extensions: [FreeFormJSON] = []
        if case .array(let list)? = members["EnvoyExtensions"] {
            // Every copy of ours goes (the last one would win: docs/COMPATIBILITY.md, Config entries); ours is written once.
            extensions = list.filter { $0.value(forCaseInsensitiveKey: "Name")?.stringValue != LambdaArguments.extensionName }
        }
        extensions.append(
            .object([
                "Name": .string(LambdaArguments.extensionName),
                "Required": .bool(false),
                "Arguments": service.arguments.json,
            ]))
        members["EnvoyExtensions"] = .array(extensions)
        return .object(members)
    }

    /// Why an existing entry must be written again, or nil when it already says what `service` needs
    /// (docs/DECISIONS.md D45: differing Lambda arguments, or a `Protocol` other than `http`).
    public static func reasonToWrite(_ service: DesiredService, current: ServiceDefaults?) -> String? {
        guard let current else { return "no service-defaults entry" }
        guard let arguments = LambdaArguments(entry: current) else { return "no \(LambdaArguments.extensionName) extension" }
        if arguments != service.arguments { return "Lambda arguments changed" }
        if current.protocolName != "http" { return "Protocol is \"\(current.protocolName)\", not \"http\"" }
        if !LambdaArguments.hasCanonicalForm(current) { return "extension not in the documented form" }
        return nil
    }
}

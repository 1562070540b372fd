/// Consul's intention semantics for one destination (docs/COMPATIBILITY.md, Intentions), compiled once per
/// snapshot and evaluated per request. Pure.
public struct IntentionEvaluator: Sendable {
    enum Verdict { case allow, deny, none }

    /// An object, so that a rule passed to `matches`, `covers` or `verdict` is one reference
    /// retained, not its dozen strings (a request passed each twice).
    final class Compiled: Sendable {
        let rule: IntentionRule
        let partition: String
        let namespace: String
        let wildness: Int
        let permissions: [CompiledPermission]

        init(rule: IntentionRule, partition: String, namespace: String, wildness: Int, permissions: [CompiledPermission]) {
            self.rule = rule
            self.partition = partition
            self.namespace = namespace
            self.wildness = wildness
            self.permissions = permissions
        }
    }

    struct CompiledPermission: Sendable {
        var allow: Bool
        var requiresJWT: Bool
        var http: HTTPRule?
        var pathRegex: PatternMatcher?
        var headerRegexes: [PatternMatcher?]
    }

    let defaultAllow: Bool
    let rules: [Compiled]
    /// Why the intentions cannot be honoured, when they cannot: a regex that does not compile, or
    /// a problem the caller found where it read them (an intention Consul should never have sent).
    /// Every request is denied (docs/DECISIONS.md D28).
    public let configurationError: String?
    /// Whether any rule matches on a request header: a request's headers need to be given only then.
    public let readsHeaders: Bool

    /// `invalid`: why the rules as read are not the service's intentions (the reader's own
    /// message); given, every request is denied with it as the configuration error.
    public init(rules input: [IntentionRule], defaultPolicy: IntentionAction, invalid: String? = nil) {
        defaultAllow = defaultPolicy == .allow
        var error: String?
        // 1. Unsupported sources are dropped. 2. Stable sort by precedence. 3. Duplicates dropped.
        let supported = input.enumerated()
            .filter { $0.element.sourcePeer.isEmpty && $0.element.sourceSamenessGroup.isEmpty && ($0.element.sourceType.isEmpty || $0.element.sourceType == "consul") }
            .sorted { $0.element.precedence != $1.element.precedence ? $0.element.precedence > $1.element.precedence : $0.offset < $1.offset }
            .map(\.element)
        // Keyed by bytes: two names Swift holds canonically equal are two sources to Consul.
        var seen = Set<[[UInt8]]>()
        var compiled: [Compiled] = []
        for rule in supported {
            let partition = rule.sourcePartition.isEmpty ? "default" : rule.sourcePartition
            let namespace = rule.sourceNamespace.isEmpty ? "default" : rule.sourceNamespace
            guard seen.insert([partition, namespace, rule.sourceName, rule.sourcePeer].map { Array($0.utf8) }).inserted else { continue }
            let permissions = rule.permissions.map { permission -> CompiledPermission in
                var pathRegex: PatternMatcher?
                var headerRegexes: [PatternMatcher?] = []
                if let http = permission.http {
                    if case .regex(let pattern) = http.path {
                        pathRegex = PatternMatcher(pattern)
                        if pathRegex == nil { error = "PathRegex \"\(pattern)\" of the intention from \(rule.sourceName) does not compile" }
                    }
                    headerRegexes = http.headers.map { header in
                        guard case .regex(let pattern) = header.match else { return nil }
                        let matcher = PatternMatcher(pattern)
                        if matcher == nil { error = "header Regex \"\(pattern)\" of the intention from \(rule.sourceName) does not compile" }
                        return matcher
                    }
                }
                return CompiledPermission(allow: permission.action == .allow, requiresJWT: permission.requiresJWT, http: permission.http, pathRegex: pathRegex, headerRegexes: headerRegexes)
            }
            let wildness = namespace == "*" ? 2 : (rule.sourceName == "*" ? 1 : 0)
            compiled.append(Compiled(rule: rule, partition: partition, namespace: namespace, wildness: wildness, permissions: permissions))
        }
        rules = compiled
        configurationError = invalid ?? error
        readsHeaders = compiled.contains { $0.permissions.contains { !($0.http?.headers.isEmpty ?? true) } }
    }

    /// The decision for `caller` (nil: no service identity) making `request`.
    public func isAllowed(caller: SPIFFEID?, request: AuthorizationRequest) -> Bool {
        guard configurationError == nil else { return false }
        var sawAllow = false
        var sawDeny = false
        // By index: the rules are read in place, where `enumerated()` copied each (a dozen strings).
        for index in rules.indices where matches(rules[index], caller) {
            // 5. Skip an intention covered by an earlier one that also matches the caller.
            let covered = rules[..<index].contains { earlier in covers(earlier, rules[index]) && matches(earlier, caller) }
            if covered { continue }
            switch verdict(rules[index], request) {
            case .allow: sawAllow = true
            case .deny: sawDeny = true
            case .none: break
            }
        }
        return defaultAllow ? !sawDeny : sawAllow
    }

    func matches(_ rule: Compiled, _ caller: SPIFFEID?) -> Bool {
        guard let caller else { return false }
        return rule.partition.bytesEqual(caller.partition)
            && (rule.namespace == "*" || rule.namespace.bytesEqual(caller.namespace))
            && (rule.rule.sourceName == "*" || rule.rule.sourceName.bytesEqual(caller.service))
    }

    func covers(_ higher: Compiled, _ rule: Compiled) -> Bool {
        higher.wildness < rule.wildness && higher.partition.bytesEqual(rule.partition)
            && (rule.namespace == "*" || rule.namespace.bytesEqual(higher.namespace))
            && (rule.rule.sourceName == "*" || rule.rule.sourceName.bytesEqual(higher.rule.sourceName))
    }

    func verdict(_ rule: Compiled, _ request: AuthorizationRequest) -> Verdict {
        if rule.rule.requiresJWT { return .deny }
        if rule.permissions.isEmpty { return rule.rule.action == .allow ? .allow : .deny }
        for permission in rule.permissions where permissionMatches(permission, request) {
            return permission.allow && !permission.requiresJWT ? .allow : .deny
        }
        return .none
    }

    func permissionMatches(_ permission: CompiledPermission, _ request: AuthorizationRequest) -> Bool {
        guard let http = permission.http else { return true }
        switch http.path {
        case nil: break
        case .exact(let path): if !request.path.bytesEqual(path) { return false }
        case .prefix(let prefix): if !request.path.bytesHavePrefix(prefix) { return false }
        // Compiled in `init`; one that does not compile denies every request before this.
        case .regex: if !(permission.pathRegex?.wholeMatches(request.path) ?? false) { return false }
        }
        if !http.methods.isEmpty && !http.methods.contains(where: { $0.bytesEqual(request.method) }) { return false }
        for (index, header) in http.headers.enumerated() where !headerMatches(header, regex: permission.headerRegexes[index], request) {
            return false
        }
        return true
    }

    /// `regex`: the compiled pattern of a `.regex` match.
    func headerMatches(_ header: HeaderRule, regex: PatternMatcher?, _ request: AuthorizationRequest) -> Bool {
        let value = request.headerValue(header.name)
        func fold(_ text: String) -> String { header.ignoreCase ? text.asciiLowercased : text }
        let test: (String) -> Bool
        switch header.match {
        case .present: return (value != nil) != header.invert
        case .exact(let exact): test = { fold($0).bytesEqual(fold(exact)) }
        case .prefix(let prefix): test = { fold($0).bytesHavePrefix(fold(prefix)) }
        case .suffix(let suffix): test = { fold($0).bytesHaveSuffix(fold(suffix)) }
        case .contains(let part): test = { fold($0).bytesContain(fold(part)) }
        case .regex: test = { regex?.wholeMatches($0) ?? false }
        }
        // A value matcher never matches a missing header, inverted or not (Envoy's behaviour).
        guard let value else { return false }
        return test(value) != header.invert
    }
}

/// A compiled regular expression matched against whole strings (RE2-style patterns).
struct PatternMatcher: @unchecked Sendable {
    // @unchecked: `Regex` holds an immutable compiled program; matching does not mutate it.
    let regex: Regex<AnyRegexOutput>

    init?(_ pattern: String) {
        guard let regex = try? Regex(pattern) else { return nil }
        // Unicode scalars, as RE2 matches code points: by default Swift matches grapheme clusters,
        // so `/admin.*` would not match `/admin` followed by a combining mark, and a deny rule would
        // let it through.
        self.regex = regex.matchingSemantics(.unicodeScalar)
    }

    func wholeMatches(_ text: String) -> Bool {
        (try? regex.wholeMatch(in: text)) != nil
    }
}

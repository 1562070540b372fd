import LambdaPayload
import MeshIdentity

/// The first step of every request, on its head alone: the service is still served, the path
/// normalizes, intentions allow the caller.
extension RequestProcessor {
    /// What the head's checks decided: take the request on, or answer at once.
    enum Admission {
        case admitted(Admitted)
        case refused(Answer)
    }

    /// A request taken on: its service as of the snapshot current when it started, that
    /// snapshot's `sanitizeXFCC`, and its normalized path.
    struct Admitted {
        var service: ServedService
        var sanitizeXFCC: Bool
        var path: String
        var query: String?
    }

    /// The checks that need only the request head: service still served → path normalized →
    /// intentions. `Expect: 100-continue` is answered only after these pass (docs/COMPATIBILITY.md, Accepted differently),
    /// so the HTTP/1.1 handler also calls this on the head.
    func admit(method: String, target: String, headers: [HTTPField], connection: ClientConnection) -> Admission {
        // Every request uses the snapshot current when it starts (intentions, Lambda settings).
        let box = store.currentBox
        guard let service = box.snapshot.services[connection.serviceName] else {
            return .refused(.notServed(connection.serviceName))
        }
        let (rawPath, query) = Self.split(target: target)
        let path: String
        do {
            path = try PathNormalizer.normalize(rawPath)
        } catch {
            return .refused(.rejected(status: 400, code: "InvalidPath", message: "the request path is not valid"))
        }
        if case .mesh(let caller, _) = connection.caller {
            let evaluator = evaluator(for: service, in: box)
            // The headers are copied into the request only for rules that look at them.
            let authorization = AuthorizationRequest(method: method, path: path, headers: evaluator.readsHeaders ? headers.map { ($0.name, $0.value) } : [])
            guard evaluator.isAllowed(caller: caller, request: authorization) else {
                return .refused(.denied)
            }
        }
        return .admitted(Admitted(service: service, sanitizeXFCC: box.snapshot.sanitizeXFCC, path: path, query: query))
    }

    /// Read through the snapshot's box (`SnapshotStore.currentBox`): the snapshot is never copied
    /// for its two members read here.
    func evaluator(for service: ServedService, in box: SnapshotStore.Box) -> IntentionEvaluator {
        let version = box.snapshot.version
        if let cached = evaluators.withLock({ $0.version == version ? $0.byService[service.name] : nil }) {
            return cached
        }
        let compiled = service.authorization(defaultPolicy: box.snapshot.defaultIntentionPolicy)
        if let problem = compiled.configurationError {
            logger.error("intentions cannot be evaluated; denying every request", metadata: ["service": "\(service.name)", "error": "\(problem)"])
        }
        evaluators.withLock { cache in
            if cache.version != version { cache = (version, [:]) }
            cache.byService[service.name] = compiled
        }
        return compiled
    }

    /// Origin-form `/p?q` or absolute-form `https://h/p?q` → (path, raw query or nil).
    static func split(target: String) -> (String, String?) {
        // Byte scans (no Foundation string search on the path); an origin-form target starts with `/`.
        var rest = Substring(target).utf8
        if rest.first != UInt8(ascii: "/"), let authority = Self.afterScheme(rest) {
            let afterAuthority = rest[authority...]
            guard let end = afterAuthority.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) else { return ("/", nil) }
            if afterAuthority[end] == UInt8(ascii: "?") {
                return ("/", String(Substring(afterAuthority[afterAuthority.index(after: end)...])))
            }
            rest = afterAuthority[end...]
        }
        guard let question = rest.firstIndex(of: UInt8(ascii: "?")) else { return (String(Substring(rest)), nil) }
        return (String(Substring(rest[..<question])), String(Substring(rest[rest.index(after: question)...])))
    }

    /// Where the authority starts in an absolute-form target: after `scheme://` at its very start,
    /// the scheme being a letter then letters, digits, `+`, `-` or `.` (RFC 3986 §3.1). Nil for
    /// anything else, so that a `://` further on (`a?u=http://h/admin`, which an HTTP/2 `:path`
    /// could carry) never makes the rest of a target its path: such a target is no absolute path,
    /// and is refused as one.
    private static func afterScheme(_ target: Substring.UTF8View) -> Substring.UTF8View.Index? {
        var index = target.startIndex
        guard index < target.endIndex, Self.isLetter(target[index]) else { return nil }
        index = target.index(after: index)
        while index < target.endIndex {
            let byte = target[index]
            if byte == UInt8(ascii: ":") {
                return target[index...].starts(with: "://".utf8) ? target.index(index, offsetBy: 3) : nil
            }
            guard Self.isLetter(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") else {
                return nil
            }
            index = target.index(after: index)
        }
        return nil
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20)
    }
}

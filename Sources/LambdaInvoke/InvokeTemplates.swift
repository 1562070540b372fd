import AWSSigV4
import Synchronization

/// The prepared SigV4 shape of each function's Invoke call (path and fixed headers canonicalized
/// once), so a request only hashes its payload and fills in the date and invocation type.
final class InvokeTemplates: Sendable {
    struct Key: Hashable {
        var function: String
        var host: String
        var region: String
        var streaming: Bool
    }

    /// A class: handed out for every call, and a struct of its size cost a dozen retains to copy.
    final class Prepared: Sendable {
        let path: String
        let signer: SigV4Signer
        let template: SigV4Template

        init(path: String, signer: SigV4Signer, template: SigV4Template) {
            self.path = path
            self.signer = signer
            self.template = template
        }
    }

    private let prepared = Mutex<[Key: Prepared]>([:])
    /// The template asked for last: under load most calls go to the function called just before,
    /// and comparing its key (strings that are mostly the very same objects) costs far less than
    /// hashing it for the dictionary.
    private let recent = Mutex<(key: Key, entry: Prepared)?>(nil)
    /// Functions come and go with configuration; past this many the cache starts over.
    static let capacity = 4096

    /// `streaming`: `InvokeWithResponseStream` rather than `Invoke`.
    func template(function: String, endpoint: LambdaEndpointResolver.Endpoint, streaming: Bool = false, keyCache: SigningKeyCache) -> Prepared {
        let key = Key(function: function, host: endpoint.host, region: endpoint.region, streaming: streaming)
        if let last = recent.withLock({ $0 }), last.key == key { return last.entry }
        if let cached = prepared.withLock({ $0[key] }) {
            recent.withLock { $0 = (key, cached) }
            return cached
        }
        let path =
            streaming
            ? "/2021-11-15/functions/\(URIEncoding.encode(function))/response-streaming-invocations"
            : "/2015-03-31/functions/\(URIEncoding.encode(function))/invocations"
        let signer = SigV4Signer(service: "lambda", region: endpoint.region, keyCache: keyCache)
        let template = signer.prepare(
            method: "POST",
            path: path,
            fixedHeaders: [SigV4Header("content-type", "application/json"), SigV4Header("host", endpoint.host)],
            variableHeaderNames: ["x-amz-invocation-type"]
        )
        let entry = Prepared(path: path, signer: signer, template: template)
        prepared.withLock { cache in
            if cache.count >= Self.capacity { cache.removeAll(keepingCapacity: true) }
            cache[key] = entry
        }
        recent.withLock { $0 = (key, entry) }
        return entry
    }
}

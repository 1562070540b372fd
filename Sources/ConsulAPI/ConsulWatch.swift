import Logging
import NIOCore

/// One endpoint to watch with blocking queries, and how to turn its answer into a value.
public struct WatchEndpoint<Value: Sendable & Equatable>: Sendable {
    public var path: String
    public var query: [(String, String)]
    /// The partition and namespace the watch is about (`nil`: the configured ones).
    public var scope: ConsulScope?
    /// Config-entry reads answer 404 for "absent", with an index (`X-Consul-Index`).
    public var allowNotFound: Bool
    public var decode: @Sendable (ConsulClient.Response) throws(ConsulError) -> Value

    public init(
        path: String,
        query: [(String, String)] = [],
        scope: ConsulScope? = nil,
        allowNotFound: Bool = false,
        decode: @escaping @Sendable (ConsulClient.Response) throws(ConsulError) -> Value
    ) {
        self.path = path
        self.query = query
        self.scope = scope
        self.allowNotFound = allowNotFound
        self.decode = decode
    }

    /// A JSON answer decoded as `Value`.
    public static func json(_ path: String, query: [(String, String)] = [], scope: ConsulScope? = nil) -> Self where Value: Decodable {
        WatchEndpoint(path: path, query: query, scope: scope) { response throws(ConsulError) in
            try ConsulClient.decode(Value.self, response.body, endpoint: path)
        }
    }

    /// A single config entry; 404 is `.absent`.
    public static func configEntry<Entry: Decodable & Sendable & Hashable>(kind: String, name: String) -> Self where Value == ConfigEntryAnswer<Entry> {
        let path = "/v1/config/\(kind)/\(name)"
        return WatchEndpoint(path: path, allowNotFound: true) { response throws(ConsulError) in
            response.status == 404 ? .absent : .present(try ConsulClient.decode(Entry.self, response.body, endpoint: path))
        }
    }
}

extension ConsulClient {
    /// Watches `endpoint` until the task is cancelled (Consul's blocking-query documentation): delivers the first answer
    /// and every answer that differs from the last delivered one; errors are reported and retried with
    /// backoff, never delivered. Nothing is delivered after cancellation. `onAnswer` runs after every
    /// answer, changed or not (a watch's freshness).
    public func watch<Value>(
        _ endpoint: WatchEndpoint<Value>,
        policy: BlockingQueryStateMachine.Policy = .init(),
        onError: @escaping @Sendable (ConsulError) -> Void = { _ in },
        onAnswer: @Sendable () -> Void = {},
        onChange: @escaping @Sendable (Value, ConsulMetadata) async -> Void
    ) async {
        var machine = BlockingQueryStateMachine(policy: policy)
        var lastDelivered: Value?

        while !Task.isCancelled {
            let request = machine.nextRequest(now: .now)
            if request.delay > .zero {
                do {
                    try await Task.sleep(for: request.delay)
                } catch {
                    return
                }
            }
            var query = endpoint.query
            if let index = request.index, let wait = request.wait {
                query.append(("index", String(index)))
                query.append(("wait", GoDuration.milliseconds(wait)))
            }
            let answer: (Value, ConsulMetadata)
            do throws(ConsulError) {
                let response = try await send(
                    .GET,
                    endpoint.path,
                    query: query,
                    scope: endpoint.scope,
                    timeout: request.index == nil ? .seconds(30) : policy.readTimeout,
                    allowNotFound: endpoint.allowNotFound
                )
                let value = try endpoint.decode(response)
                do throws(BlockingQueryStateMachine.AnswerError) {
                    try machine.answered(newIndex: response.metadata.index)
                } catch {
                    throw ConsulError(.missingIndex, endpoint: endpoint.path, "blocking answer without X-Consul-Index")
                }
                answer = (value, response.metadata)
            } catch {
                guard !Task.isCancelled else { return }
                if error.code != .missingIndex { machine.failed(retryAfter: error.retryAfter) }
                logger.debug("consul watch error", metadata: ["endpoint": "\(endpoint.path)", "error": "\(error)"])
                onError(error)
                continue
            }
            guard !Task.isCancelled else { return }
            onAnswer()
            if lastDelivered != answer.0 {
                lastDelivered = answer.0
                await onChange(answer.0, answer.1)
            }
        }
    }
}

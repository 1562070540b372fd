import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A request as the test server saw it.
public struct RecordedRequest: Sendable {
    public var method: String
    public var uri: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Which accepted connection (1-based) carried it.
    public var connectionNumber: Int
    public var receivedAt: ContinuousClock.Instant = .now

    public var path: String { String(uri.split(separator: "?", maxSplits: 1).first ?? "") }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// What the test server does with a request.
public struct ScriptedResponse: Sendable {
    public enum Behaviour: Sendable, Equatable {
        /// Write the response normally.
        case respond
        /// Write the head and `partialBody` bytes of the body, then close the connection.
        case closeMidBody(partialBody: Int)
        /// Close the connection without answering.
        case closeWithoutResponse
        /// Never answer (the client's timeout must fire).
        case hang
        /// Answer as if keeping the connection open (no `Connection: close`), then close it, as a
        /// server does when a keep-alive connection reaches its idle timeout.
        case respondThenClose
        /// A chunked body: each piece as a chunk of its own, flushed, `pause` apart (the body is
        /// ignored); then the last chunk, or with `thenClose`, the connection closes instead.
        case chunked(pieces: [[UInt8]], pause: Duration, thenClose: Bool)
    }

    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var delay: Duration
    public var behaviour: Behaviour

    public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = [], delay: Duration = .zero, behaviour: Behaviour = .respond) {
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = delay
        self.behaviour = behaviour
    }

    public init(status: Int = 200, headers: [(String, String)] = [], json: String, delay: Duration = .zero) {
        self.init(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(json.utf8), delay: delay)
    }
}

/// A real HTTP/1.1 server on 127.0.0.1 (optionally TLS) whose answers a test scripts.
///
/// It counts accepted TCP connections, so tests can prove that a client pools connections.
public final class TestHTTPServer: Sendable {
    public typealias Handler = @Sendable (RecordedRequest) async -> ScriptedResponse

    private let channel: Channel
    private let state: NIOLockedValueBox<State>
    public let port: Int
    public let isTLS: Bool

    struct State {
        var connections = 0
        var requests: [RecordedRequest] = []
        /// Open connections by client address, when a per-client limit is set.
        var openByClient: [String: Int] = [:]
        /// The most connections one client address had open at once.
        var peakPerClient = 0
        var refusedConnections = 0
    }

    /// The most connections one client address had open at once (counted when a limit is set).
    public var peakConnectionsPerClient: Int { state.withLockedValue { $0.peakPerClient } }
    /// The connections the busiest client address has open now (counted when a limit is set).
    public var openConnectionsPerClient: Int { state.withLockedValue { $0.openByClient.values.max() ?? 0 } }

    /// Connections refused by the per-client limit so far.
    public var refusedConnections: Int { state.withLockedValue { $0.refusedConnections } }

    /// What a Consul agent writes, before TLS, to a connection over `limits.http_max_conns_per_client`
    /// (docs/DECISIONS.md D35), then closes it.
    public static let tooManyConnections = "HTTP/1.1 429 Too Many Requests\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n"

    public var baseURL: String { "\(isTLS ? "https" : "http")://127.0.0.1:\(port)" }
    public var connectionCount: Int { state.withLockedValue { $0.connections } }
    public var requests: [RecordedRequest] { state.withLockedValue { $0.requests } }

    /// `maxConnectionsPerClient`: over it, a client address's next connection gets Consul's 429
    /// text and is closed, as a Consul agent does (its default is 200, loopback included).
    public init(tls: TLSConfiguration? = nil, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxConnectionsPerClient: Int? = nil, handler: @escaping Handler) async throws {
        let state = NIOLockedValueBox(State())
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                if let limit = maxConnectionsPerClient {
                    let client = channel.remoteAddress?.ipAddress ?? "?"
                    let admitted = state.withLockedValue { state in
                        guard state.openByClient[client, default: 0] < limit else {
                            state.refusedConnections += 1
                            return false
                        }
                        state.openByClient[client, default: 0] += 1
                        state.peakPerClient = max(state.peakPerClient, state.openByClient[client]!)
                        return true
                    }
                    guard admitted else {
                        return channel.pipeline.addHandler(TooManyConnectionsResponder())
                    }
                    channel.closeFuture.whenComplete { _ in state.withLockedValue { $0.openByClient[client, default: 1] -= 1 } }
                }
                let number = state.withLockedValue { state in
                    state.connections += 1
                    return state.connections
                }
                return channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        ScriptedHTTPHandler(connectionNumber: number, state: state, handler: handler)
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.state = state
        self.port = channel.localAddress!.port!
        self.isTLS = tls != nil
    }

    public func shutdown() async {
        try? await channel.close()
    }
}

private final class ScriptedHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: every stored property is touched only on the channel's event loop.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let connectionNumber: Int
    private let state: NIOLockedValueBox<TestHTTPServer.State>
    private let handler: TestHTTPServer.Handler
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    /// The handler's work for the request in flight, cancelled when the client goes away (so a
    /// held long poll ends with its connection, as in Consul).
    private var inFlight: Task<Void, Never>?

    init(connectionNumber: Int, state: NIOLockedValueBox<TestHTTPServer.State>, handler: @escaping TestHTTPServer.Handler) {
        self.connectionNumber = connectionNumber
        self.state = state
        self.handler = handler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            let request = RecordedRequest(
                method: head.method.rawValue,
                uri: head.uri,
                headers: head.headers.map { ($0.name, $0.value) },
                body: body,
                connectionNumber: connectionNumber
            )
            state.withLockedValue { $0.requests.append(request) }
            let keepAlive = head.isKeepAlive
            let handler = self.handler
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let promise = context.eventLoop.makePromise(of: ScriptedResponse.self)
            inFlight = Task {
                let response = await handler(request)
                if response.delay > .zero { try? await Task.sleep(for: response.delay) }
                promise.succeed(response)
            }
            promise.futureResult.whenSuccess { response in
                let (handler, context) = loopBound.value
                handler.write(response, keepAlive: keepAlive, context: context)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inFlight?.cancel()
        inFlight = nil
        context.fireChannelInactive()
    }

    private func write(_ response: ScriptedResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        switch response.behaviour {
        case .hang:
            return
        case .closeWithoutResponse:
            context.close(promise: nil)
            return
        case .respond, .closeMidBody, .respondThenClose:
            break
        case .chunked(let pieces, let pause, let thenClose):
            // No content-length: NIO's encoder frames the body as chunks.
            let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: HTTPHeaders(response.headers))
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
            writePieces(pieces[...], pause: pause, thenClose: thenClose, context: context)
            return
        }
        var headers = HTTPHeaders(response.headers)
        if !headers.contains(name: "content-length") {
            headers.add(name: "content-length", value: String(response.body.count))
        }
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if case .closeMidBody(let partial) = response.behaviour {
            let prefix = response.body.prefix(partial)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: prefix)))), promise: nil)
            context.close(promise: nil)
            return
        }
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive || response.behaviour == .respondThenClose {
            done.whenComplete { _ in context.close(promise: nil) }
        }
    }
}

extension ScriptedHTTPHandler {
    fileprivate func writePieces(_ pieces: ArraySlice<[UInt8]>, pause: Duration, thenClose: Bool, context: ChannelHandlerContext) {
        guard let piece = pieces.first else {
            if thenClose {
                context.close(promise: nil)
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: piece)))), promise: nil)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .nanoseconds(Int64(pause.components.seconds * 1_000_000_000 + pause.components.attoseconds / 1_000_000_000))) {
            let (handler, context) = loopBound.value
            guard context.channel.isActive else { return }
            handler.writePieces(pieces.dropFirst(), pause: pause, thenClose: thenClose, context: context)
        }
    }
}

/// Writes Consul's connection-limit answer as soon as the connection is up, then closes it.
private final class TooManyConnectionsResponder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(ByteBuffer(string: TestHTTPServer.tooManyConnections))).whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

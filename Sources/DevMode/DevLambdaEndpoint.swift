import AWSSigV4
import Foundation
import LambdaPayload
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Dev mode's Lambda Invoke endpoint on loopback: `POST /2015-03-31/functions/<name or ARN>/invocations`
/// and, for response streaming, `POST /2021-11-15/functions/<name or ARN>/response-streaming-invocations`,
/// SigV4 checked against fixed dev credentials, answered by the built-in `DevFunction`s with
/// Lambda's own status codes, headers and error shapes (AWS Lambda Invoke API reference); a stream is chunked
/// event-stream messages (`DevStream`).
public final class DevLambdaEndpoint: Service, Sendable {
    public static let credentials = Credentials(accessKeyID: "AKIDLAMBDAGATEWAYDEV", secretAccessKey: "lambda-gateway-dev-secret-not-for-production")

    let channel: any Channel
    /// `http://127.0.0.1:<port>`.
    public let url: String

    /// Binds on `host:port` (port 0: any free port) and serves until graceful shutdown of `run()`.
    public static func bind(host: String = "127.0.0.1", port: Int = 0, group: any EventLoopGroup, logger: Logger) async throws -> DevLambdaEndpoint {
        let verifier = SigV4Verifier(credentials: Self.credentials)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(NIOHTTPServerRequestAggregator(maxContentLength: 6 * 1024 * 1024 + 1024))
                    try channel.pipeline.syncOperations.addHandler(DevLambdaHandler(verifier: verifier))
                }
            }
            .bind(host: host, port: port)
            .get()
        let address = channel.localAddress
        return DevLambdaEndpoint(channel: channel, url: "http://\(address?.ipAddress ?? host):\(address?.port ?? port)")
    }

    init(channel: any Channel, url: String) {
        self.channel = channel
        self.url = url
    }

    /// Stops listening (outside a service group: tests).
    public func close() async {
        try? await channel.close()
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try? await channel.close()
    }

    /// A whole answer, or a stream.
    enum Reply {
        case whole(status: Int, headers: [(String, String)], body: ByteBuffer)
        case stream(headers: [(String, String)], DevStream)
    }

    /// The answer to one buffered request. Internal so tests can drive it without a socket.
    static func answer(method: String, uri: String, headers: [(name: String, value: String)], body: ByteBuffer, verifier: SigV4Verifier) -> (status: Int, headers: [(String, String)], body: ByteBuffer)
    {
        switch reply(method: method, uri: uri, headers: headers, body: body, verifier: verifier) {
        case .whole(let status, let headers, let body): return (status, headers, body)
        case .stream(let headers, _): return (200, headers, ByteBuffer())
        }
    }

    static let invokePath = (prefix: "/2015-03-31/functions/", suffix: "/invocations")
    static let streamPath = (prefix: "/2021-11-15/functions/", suffix: "/response-streaming-invocations")

    /// The reply to one request: Invoke, or InvokeWithResponseStream.
    static func reply(method: String, uri: String, headers: [(name: String, value: String)], body: ByteBuffer, verifier: SigV4Verifier) -> Reply {
        func error(_ status: Int, _ code: String, _ message: String) -> Reply {
            .whole(
                status: status, headers: [("x-amzn-ErrorType", code), ("content-type", "application/json")],
                body: ByteBuffer(string: #"{"Type":"User","message":"\#(message.replacingOccurrences(of: "\"", with: "'"))"}"#))
        }
        let path = String(uri.prefix { $0 != "?" })
        let query = uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) } ?? ""
        let streaming = path.hasPrefix(streamPath.prefix) && path.hasSuffix(streamPath.suffix)
        let (prefix, suffix) = streaming ? streamPath : invokePath
        guard method == "POST", path.hasPrefix(prefix), path.hasSuffix(suffix), path.count > prefix.count + suffix.count else {
            return error(404, "UnknownOperationException", "Unknown operation \(method) \(path)")
        }
        if let failure = verifier.verify(method: method, path: path, query: query, headers: headers, body: body.readableBytesView) {
            return error(403, failure.code, failure.message)
        }
        let encodedName = path.dropFirst(prefix.count).dropLast(suffix.count)
        let identifier = String(encodedName).removingPercentEncoding ?? String(encodedName)
        // A name, a partial ARN or a full ARN; a qualifier after the name is accepted and ignored.
        let parts = identifier.split(separator: ":", omittingEmptySubsequences: false)
        let name = parts.firstIndex(of: "function").map { parts.indices.contains($0 + 1) ? String(parts[$0 + 1]) : "" } ?? String(parts.first ?? "")
        guard let function = DevFunction(rawValue: name) else {
            return error(404, "ResourceNotFoundException", "Function not found: \(identifier)")
        }
        guard body.readableBytes == 0 || (try? JSONParser.parse(body.readableBytesView)) != nil else {
            return error(400, "InvalidRequestContentException", "Could not parse request body into json")
        }
        let requestID = UUID().uuidString.lowercased()
        let invocationType = headers.first(where: { $0.name.lowercased() == "x-amz-invocation-type" })?.value ?? "RequestResponse"
        if streaming {
            guard invocationType == "RequestResponse" || invocationType == "DryRun" else {
                return error(400, "InvalidParameterValueException", "Unsupported invocation type \(invocationType)")
            }
            let stream = function.stream(event: body)
            return .stream(headers: [("x-amzn-RequestId", requestID), ("X-Amz-Executed-Version", "$LATEST"), ("content-type", stream.contentType)], stream)
        }
        switch invocationType {
        case "Event":
            return .whole(status: 202, headers: [("x-amzn-RequestId", requestID)], body: ByteBuffer())
        case "DryRun":
            return .whole(status: 204, headers: [("x-amzn-RequestId", requestID)], body: ByteBuffer())
        case "RequestResponse":
            return .whole(status: 200, headers: [("x-amzn-RequestId", requestID), ("X-Amz-Executed-Version", "$LATEST"), ("content-type", "application/json")], body: function.invoke(event: body))
        case let other:
            return error(400, "InvalidParameterValueException", "Unsupported invocation type \(other)")
        }
    }
}

/// Answers aggregated requests on the channel's event loop.
final class DevLambdaHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    let verifier: SigV4Verifier

    init(verifier: SigV4Verifier) {
        self.verifier = verifier
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = unwrapInboundIn(data)
        let reply = DevLambdaEndpoint.reply(
            method: request.head.method.rawValue, uri: request.head.uri, headers: request.head.headers.map { ($0.name, $0.value) },
            body: request.body ?? ByteBuffer(), verifier: verifier
        )
        let keepAlive = request.head.isKeepAlive
        switch reply {
        case .whole(let status, let headerList, let body):
            var headers = HTTPHeaders(headerList)
            headers.add(name: "content-length", value: String(body.readableBytes))
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        case .stream(let headerList, let stream):
            // No content-length: NIO's encoder frames the body as chunks.
            var headers = HTTPHeaders(headerList)
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: .ok, headers: headers))), promise: nil)
            if stream.firstPause > .zero {
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: stream.firstPause) {
                    let (handler, context) = loopBound.value
                    guard context.channel.isActive else { return }
                    handler.play(stream.steps[...], pause: stream.pause, keepAlive: keepAlive, context: context)
                }
            } else {
                play(stream.steps[...], pause: stream.pause, keepAlive: keepAlive, context: context)
            }
        }
    }

    /// Each step once the one before is written and the pause has passed: a client that reads
    /// slowly slows the stream, as Lambda's does.
    private func play(_ steps: ArraySlice<DevStream.Step>, pause: TimeAmount, keepAlive: Bool, context: ChannelHandlerContext) {
        guard let step = steps.first else {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
            return
        }
        guard let frame = DevStream.frames(of: step) else {
            context.close(promise: nil)
            return
        }
        let rest = steps.dropFirst()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(frame)))).whenComplete { result in
            let (handler, context) = loopBound.value
            guard case .success = result, context.channel.isActive else { return }
            // Always from a fresh stack: a write that completes at once would otherwise recurse.
            var pausesBefore = false
            switch rest.first {
            case .payload?, .filler?, .tick?: pausesBefore = pause > .zero
            default: break
            }
            if pausesBefore {
                context.eventLoop.assumeIsolated().scheduleTask(in: pause) { handler.play(rest, pause: pause, keepAlive: keepAlive, context: context) }
            } else {
                context.eventLoop.assumeIsolated().execute { handler.play(rest, pause: pause, keepAlive: keepAlive, context: context) }
            }
        }
    }
}

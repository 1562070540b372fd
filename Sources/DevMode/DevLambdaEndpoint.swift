import AWSSigV4
import Foundation
import LambdaPayload
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Dev mode's Lambda Invoke endpoint on loopback: `POST /2015-03-31/functions/<name or ARN>/invocations`,
/// SigV4 checked against fixed dev credentials, answered by the built-in `DevFunction`s with
/// Lambda's own status codes, headers and error shapes (lambda.md §3–4).
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

    public func run() async throws {
        try? await gracefulShutdown()
        try? await channel.close()
    }

    /// The answer to one request. Internal so tests can drive it without a socket.
    static func answer(method: String, uri: String, headers: [(name: String, value: String)], body: ByteBuffer, verifier: SigV4Verifier) -> (status: Int, headers: [(String, String)], body: ByteBuffer) {
        func error(_ status: Int, _ code: String, _ message: String) -> (Int, [(String, String)], ByteBuffer) {
            (status, [("x-amzn-ErrorType", code), ("content-type", "application/json")], ByteBuffer(string: #"{"Type":"User","message":"\#(message.replacingOccurrences(of: "\"", with: "'"))"}"#))
        }
        let path = String(uri.prefix { $0 != "?" })
        let query = uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) } ?? ""
        let prefix = "/2015-03-31/functions/"
        guard method == "POST", path.hasPrefix(prefix), path.hasSuffix("/invocations") else {
            return error(404, "UnknownOperationException", "Unknown operation \(method) \(path)")
        }
        if let failure = verifier.verify(method: method, path: path, query: query, headers: headers, body: body.readableBytesView) {
            return error(403, failure.code, failure.message)
        }
        let encodedName = path.dropFirst(prefix.count).dropLast("/invocations".count)
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
        switch headers.first(where: { $0.name.lowercased() == "x-amz-invocation-type" })?.value ?? "RequestResponse" {
        case "Event":
            return (202, [("x-amzn-RequestId", requestID)], ByteBuffer())
        case "DryRun":
            return (204, [("x-amzn-RequestId", requestID)], ByteBuffer())
        case "RequestResponse":
            return (200, [("x-amzn-RequestId", requestID), ("X-Amz-Executed-Version", "$LATEST"), ("content-type", "application/json")], function.invoke(event: body))
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
        let answer = DevLambdaEndpoint.answer(
            method: request.head.method.rawValue, uri: request.head.uri, headers: request.head.headers.map { ($0.name, $0.value) },
            body: request.body ?? ByteBuffer(), verifier: verifier
        )
        var headers = HTTPHeaders(answer.headers)
        headers.add(name: "content-length", value: String(answer.body.readableBytes))
        if !request.head.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: HTTPResponseStatus(statusCode: answer.status), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(answer.body))), promise: nil)
        let keepAlive = request.head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}

import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One mesh call the way a Consul sidecar makes it (mTLS with a client certificate, SNI naming the
/// service, server verified against the mesh CA): dev mode calls itself once at start, so a new
/// user sees a working call without copying anything.
public enum DevSelfCheck {
    public struct Answer: Sendable {
        public var status: Int
        public var body: String
    }

    public static func call(
        host: String, port: Int, sni: String, caPEM: String, certificatePEM: String, keyPEM: String, path: String, group: any EventLoopGroup
    ) async throws -> Answer {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
        tls.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: tls)
        let promise = group.next().makePromise(of: Answer.self)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: sni))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                }
            }
            .connect(host: host, port: port)
            .get()
        var headers = HTTPHeaders([("host", sni), ("user-agent", "lambda-gateway-dev-self-check"), ("connection", "close")])
        headers.add(name: "content-length", value: "0")
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        channel.closeFuture.whenComplete { _ in promise.fail(ChannelError.eof) }
        defer { channel.close(promise: nil) }
        return try await promise.futureResult.get()
    }

    final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
        // @unchecked: used on its channel's event loop only.
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<Answer>
        var status = 0
        var body = ByteBuffer()

        init(promise: EventLoopPromise<Answer>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): status = Int(head.status.code)
            case .body(var chunk): body.writeBuffer(&chunk)
            case .end: promise.succeed(Answer(status: status, body: String(buffer: body)))
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
            context.close(promise: nil)
        }
    }
}

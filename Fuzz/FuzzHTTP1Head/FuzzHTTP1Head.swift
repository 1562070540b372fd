// libFuzzer target: the bytes of an HTTP/1.x connection after the handshake. NIO's request decoder,
// configured as `configureHTTP1Sync` configures it, feeds `RequestReader` as the connection handler
// does; each complete request is prepared (path normalized, intentions, Invoke payload) up to the
// Lambda call, which is never made. Refusals are encoded as the handler would write them.
import AWSCredentials
import AWSSigV4
import FuzzSupport
import LambdaInvoke
import Logging
import MeshIdentity
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import GatewayCore
@testable import LambdaPayload

let trustDomain = "11111111-2222-3333-4444-555555555555.consul"

/// `orders` (Envoy format; `billing` may GET under /orders with x-tenant, never /admin; `web` may do
/// anything) and `thumbnails` (API Gateway v2, asynchronous, passthrough off).
let processor: RequestProcessor = {
    func service(_ name: String, format: PayloadFormat, invocation: InvocationType, intentions: [IntentionRule]) -> ServedService {
        ServedService(
            name: name,
            snis: [ServiceSNI.make(service: name, datacenter: "dc1", trustDomain: trustDomain)],
            lambda: LambdaSettings(
                function: try! FunctionARN(parsing: "arn:aws:lambda:us-east-1:123456789012:function:\(name)"),
                payloadFormat: format, passthrough: false, invocationType: invocation
            ),
            protocolName: "http",
            requestTimeout: nil,
            intentions: intentions,
            leaf: ServiceLeaf(
                certificatePEM: "", privateKeyPEM: "", serviceURI: SPIFFEID(trustDomain: trustDomain, datacenter: "dc1", service: name).description,
                serial: "1", validAfter: .distantPast, validBefore: .distantFuture, modifyIndex: 1
            )
        )
    }
    let billing = StaticConfig.intention(
        from: "billing", action: nil,
        permissions: [
            IntentionPermissionRule(action: .deny, http: HTTPRule(path: .prefix("/admin"))),
            IntentionPermissionRule(action: .allow, http: HTTPRule(path: .regex("/orders/[0-9]+(/.*)?"), methods: ["GET", "HEAD", "POST"], headers: [HeaderRule(name: "x-tenant", match: .present)])),
        ])
    let web = StaticConfig.intention(from: "web", action: .allow)
    var snapshot = GatewaySnapshot.empty
    snapshot.version = 1
    snapshot.trustDomain = trustDomain
    snapshot.datacenter = "dc1"
    for served in [
        service("orders", format: .envoy, invocation: .requestResponse, intentions: [billing, web]),
        service("thumbnails", format: .apiGatewayV2, invocation: .event, intentions: [web]),
    ] {
        snapshot.services[served.key] = served
        for sni in served.snis { snapshot.sniTable[sni] = served.key }
    }
    let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    // Never called: prepare stops before the Invoke call, so no connection is ever opened.
    let invoker = try! LambdaInvokeClient(
        configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(customEndpoint: "http://127.0.0.1:9")),
        credentials: StaticCredentialSource(Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret")),
        eventLoopGroup: EmbeddedEventLoop(),
        logger: logger
    )
    return RequestProcessor(store: SnapshotStore(snapshot), invoker: invoker, logger: logger)
}()

let connections = [
    ClientConnection(
        serviceName: "orders", caller: .mesh(SPIFFEID(trustDomain: trustDomain, datacenter: "dc1", service: "billing"), forwardedClientCert: PreEscapedString("By=spiffe://x;URI=spiffe://y")),
        negotiatedProtocol: "http/1.1", peerIP: "10.0.0.7"),
    ClientConnection(
        serviceName: "thumbnails", caller: .mesh(SPIFFEID(trustDomain: trustDomain, datacenter: "dc1", service: "web"), forwardedClientCert: PreEscapedString("By=spiffe://x;URI=spiffe://y")),
        negotiatedProtocol: nil, peerIP: "10.0.0.8"),
]

/// One connection's reader over the decoded parts, as `HTTP1ConnectionStateMachine` drives it.
func serve(_ parts: [HTTPServerRequestPart], on connection: ClientConnection) {
    var reader = RequestReader(limit: processor.limit(for: connection))
    for part in parts {
        switch reader.receive(part, processor: processor, connection: connection) {
        case .none, .sendContinue:
            break
        case .refuse(let answer, let head, let close):
            _ = HTTP1ResponseEncoder.encode(answer.response, version: head.version, bodyless: head.method == .HEAD, close: close, allocator: ByteBufferAllocator())
        case .process(let head, let request):
            precondition(RequestReader.refusal(of: head, limit: reader.limit) == nil)
            check(path: head.uri)
            switch processor.prepare(request, connection: connection) {
            case .answer(let answer):
                _ = HTTP1ResponseEncoder.encode(answer.response, version: head.version, bodyless: head.method == .HEAD, close: !head.isKeepAlive, allocator: ByteBufferAllocator())
            case .invoke(let call):
                // The payload goes to Lambda as JSON: it must be JSON.
                do {
                    _ = try call.invocation.payload.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
                } catch {
                    preconditionFailure("the Invoke payload for \(head.method) \(head.uri) is not JSON: \(error)")
                }
            }
        }
    }
}

/// The normalized path is what intentions see and what the function gets: normalizing it again
/// must not change it.
func check(path target: String) {
    let (path, _) = RequestProcessor.split(target: target)
    guard let normalized = try? PathNormalizer.normalize(path) else { return }
    precondition(normalized.hasPrefix("/"), "\(path) normalizes to \(normalized)")
    precondition((try? PathNormalizer.normalize(normalized)) == normalized, "\(path) normalizes to \(normalized), which normalizes again")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let channel = EmbeddedChannel()
    let decoder = HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: RequestReader.limits)
    try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder))
    // A parser error ends the connection (400 or 431); the parts decoded before it still count.
    _ = try? channel.writeInbound(ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size)))
    // Then the client closes: an HTTP/1.0 body without a length ends there.
    channel.close(promise: nil)
    channel.embeddedEventLoop.run()
    var parts: [HTTPServerRequestPart] = []
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
    for connection in connections { serve(parts, on: connection) }
    return 0
}

@_cdecl("FuzzHTTP1Head_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    // One request first: the processor compiles each service's intentions once per snapshot, and
    // no fuzz input should be charged with those allocations.
    let warmUp = Array("GET /orders/1 HTTP/1.1\r\nHost: orders\r\nx-tenant: acme\r\n\r\n".utf8)
    _ = warmUp.withUnsafeBufferPointer { fuzz($0.baseAddress!, $0.count) }
    return runLibFuzzer(argc, argv, fuzz)
}

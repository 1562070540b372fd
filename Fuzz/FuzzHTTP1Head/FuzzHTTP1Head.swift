// libFuzzer target: the bytes of an HTTP/1.x connection after the handshake. The gateway's request
// parser (`HTTP1RequestParser`) reads them as the connection handler does, fed whole and in pieces,
// and feeds `RequestReader`; each complete request is prepared (path normalized, intentions,
// Invoke payload) up to the Lambda call, which is never made. Refusals are encoded as the handler
// would write them.
//
// The same bytes go through NIO's request decoder (llhttp), which the gateway used before: every
// request the gateway's parser reads, llhttp must read the same (method, target, version, fields,
// body). The parser may refuse what llhttp accepts, never the other way round.
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
        case .refuse(let answer, let head):
            _ = HTTP1ResponseEncoder.encode(answer.response, version: head.version, bodyless: head.method == .HEAD, close: true, allocator: ByteBufferAllocator())
        case .process(let head, let request, _):
            precondition(RequestReader.refusal(of: head, fields: HeadFields(head), limit: reader.limit) == nil)
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

/// A request as both parsers read it: the head, and the body's bytes however they were cut.
struct ReadRequest: Equatable, CustomStringConvertible {
    var method: HTTPMethod
    var target: String
    var version: HTTPVersion
    var fields: [String]
    var body: [UInt8] = []
    var ended = false
    var description: String { "\(method) \(target) \(version) \(fields) body \(body.count) bytes, ended \(ended)" }

    init(_ head: HTTPRequestHead) {
        method = head.method
        target = head.uri
        version = head.version
        // llhttp keeps the whitespace after a value; the gateway's parser drops it, as RFC 9110
        // §5.5 and Envoy do.
        fields = head.headers.map { "\($0.name): \(String($0.value.reversed().drop { $0 == " " || $0 == "\t" }.reversed()))" }
    }
}

func requests(in parts: [HTTPServerRequestPart]) -> [ReadRequest] {
    var requests: [ReadRequest] = []
    for part in parts {
        switch part {
        case .head(let head): requests.append(ReadRequest(head))
        case .body(let bytes): requests[requests.count - 1].body += bytes.readableBytesView
        case .end: requests[requests.count - 1].ended = true
        }
    }
    return requests
}

/// The gateway parser's parts, the bytes fed in pieces of `piece`; and whether it refused them.
func gatewayParts(_ bytes: UnsafeBufferPointer<UInt8>, piece: Int) -> (parts: [HTTPServerRequestPart], refused: Bool) {
    var parser = HTTP1RequestParser()
    var buffer = ByteBuffer()
    var parts: [HTTPServerRequestPart] = []
    var offset = 0
    do {
        repeat {
            let end = min(offset + piece, bytes.count)
            buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
            while let part = try parser.next(&buffer) { parts.append(part) }
        } while offset < bytes.count
    } catch {
        return (parts, true)
    }
    return (parts, false)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let (parts, refused) = gatewayParts(bytes, piece: max(size, 1))
    let inPieces = gatewayParts(bytes, piece: 1 + size % 13)
    precondition(requests(in: inPieces.parts) == requests(in: parts) && inPieces.refused == refused, "the parser reads the bytes differently in pieces")

    let channel = EmbeddedChannel()
    let decoder = HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: RequestReader.limits)
    try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder))
    // A parser error ends the connection (400 or 431); the parts decoded before it still count.
    _ = try? channel.writeInbound(ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size)))
    // Then the client closes: an HTTP/1.0 body without a length ends there.
    channel.close(promise: nil)
    channel.embeddedEventLoop.run()
    var llhttpParts: [HTTPServerRequestPart] = []
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) { llhttpParts.append(part) }
    // Every request the gateway's parser read whole, llhttp read the same.
    let read = requests(in: parts).filter(\.ended)
    let llhttp = requests(in: llhttpParts)
    precondition(read.count <= llhttp.count, "the parser read \(read.count) requests, llhttp \(llhttp.count): \(read) against \(llhttp)")
    for (ours, theirs) in zip(read, llhttp) {
        precondition(ours == theirs, "the parser read \(ours), llhttp \(theirs)")
    }
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

import AWSSigV4
import LambdaPayload
import MeshIdentity
import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayCore

/// What the gateway adds to the client's headers before they go into the payload
/// (mesh-identity.md §7 and §9): `x-forwarded-client-cert`, `x-forwarded-proto`, `x-request-id`.
@Suite("Forwarded headers")
struct ForwardedHeadersTests {
    let processor: RequestProcessor
    let channel = EmbeddedChannel()
    static let element = "By=spiffe://td/ns/default/dc/dc1/svc/orders;Hash=ab;URI=spiffe://td/ns/default/dc/dc1/svc/web"
    let mesh = ClientConnection(
        serviceName: "orders", caller: .mesh(SPIFFEID(trustDomain: "td", datacenter: "dc1", service: "web"), forwardedClientCert: PreEscapedString(Self.element)),
        negotiatedProtocol: "h2", peerIP: "127.0.0.1")
    let direct = ClientConnection(serviceName: "orders", caller: .direct, negotiatedProtocol: "http/1.1", peerIP: "127.0.0.1")

    init() throws {
        processor = try EmbeddedProcessor.make(on: channel, settings: ProcessingSettings())
    }

    func forwarded(_ fields: [(String, String)], from connection: ClientConnection, sanitize: Bool = false) -> [(String, String)] {
        processor.forwardedHeaders(fields.map { HTTPField($0.0, $0.1) }, connection: connection, sanitize: sanitize).map { ($0.name, $0.value) }
    }

    @Test func aMeshCallerGetsTheElementHTTPSAndARequestIDAfterItsOwnFields() throws {
        let fields = forwarded([("Content-Type", "text/plain"), ("x-trace", "a")], from: mesh)
        try #require(fields.count == 5)
        #expect(fields[0] == ("Content-Type", "text/plain") && fields[1] == ("x-trace", "a"))
        #expect(fields[2] == ("x-forwarded-client-cert", Self.element))
        #expect(fields[3] == ("x-forwarded-proto", "https"))
        #expect(fields[4].0 == "x-request-id" && fields[4].1.count == 36)
    }

    @Test func aMeshCallersOwnElementsComeFirstInOneFieldWhateverTheirCase() {
        let fields = forwarded([("X-Forwarded-Client-Cert", "By=a"), ("accept", "*/*"), ("x-forwarded-client-cert", "By=b")], from: mesh)
        #expect(fields.map(\.0) == ["accept", "x-forwarded-client-cert", "x-forwarded-proto", "x-request-id"])
        #expect(fields[1].1 == "By=a,By=b," + Self.element)
    }

    @Test func sanitizingRemovesEveryElementAndAddsNone() {
        for connection in [mesh, direct] {
            let fields = forwarded([("X-Forwarded-Client-Cert", "By=a"), ("accept", "*/*")], from: connection, sanitize: true)
            #expect(fields.map(\.0) == ["accept", "x-forwarded-proto", "x-request-id"])
        }
    }

    @Test func aDirectCallersOwnElementPassesAsItIsOverPlainHTTP() {
        let fields = forwarded([("x-forwarded-client-cert", "By=a")], from: direct)
        #expect(fields.count == 3)
        #expect(fields[0] == ("x-forwarded-client-cert", "By=a"))
        #expect(fields[1] == ("x-forwarded-proto", "http"))
    }

    @Test func theClientsProtoAndRequestIDAreKeptInAnyCase() {
        let fields = forwarded([("X-Forwarded-Proto", "http"), ("X-Request-ID", "r-1")], from: mesh)
        #expect(fields.map(\.0) == ["X-Forwarded-Proto", "X-Request-ID", "x-forwarded-client-cert"])
        #expect(fields[0].1 == "http" && fields[1].1 == "r-1")
    }

    @Test func namesOfTheSameLengthAreNotMistakenForTheGatewaysOwn() {
        // 23, 17 and 12 bytes, as the three names the gateway sets.
        let fields = forwarded([("x-forwarded-client-cerx", "1"), ("x-forwarded-prota", "2"), ("x-request-ix", "3")], from: mesh)
        #expect(fields.map(\.0) == ["x-forwarded-client-cerx", "x-forwarded-prota", "x-request-ix", "x-forwarded-client-cert", "x-forwarded-proto", "x-request-id"])
    }

    /// A mesh connection's payloads open with its element's lead (`RequestEncoder.lead`), hashed
    /// once for the connection: signing hashes only the rest, and the digest is the payload's own.
    @Test func aMeshCallersPayloadOpensWithTheConnectionsHashedLead() throws {
        let request = GatewayRequest(
            method: "POST", target: "/a", headers: [HTTPField("host", "orders"), HTTPField("content-type", "application/json")], body: ByteBuffer(string: "{}"),
            protocolName: "HTTP/1.1")
        var allowing = processor.store.snapshot
        allowing.defaultIntentionPolicy = .allow
        processor.store.publish(allowing)
        guard case .invoke(let call) = processor.prepare(request, connection: mesh) else {
            Issue.record("the request was answered without a call")
            return
        }
        let prefix = try #require(call.invocation.payloadPrefix)
        #expect(prefix.bytes.count > Self.element.utf8.count)
        call.invocation.payload.withUnsafeReadableBytes { payload in
            #expect(prefix.isPrefix(of: payload))
            #expect("\(prefix.hash(payload))" == "\(SHA256Prefix([]).hash(payload))")
        }
        guard case .invoke(let plain) = processor.prepare(request, connection: direct) else {
            Issue.record("the request was answered without a call")
            return
        }
        #expect(plain.invocation.payloadPrefix == nil)
    }
}

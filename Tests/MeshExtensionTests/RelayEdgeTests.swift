import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import TestSupport
import Testing

@testable import MeshExtension

/// Failure cases of the listener / dialer / relay, in process. The dialer dials the peer
/// directly (the peer ignores the SNI), so no gateway stand-in buffers in between.
@Suite(.serialized) struct RelayEdgeTests {
    static let trustDomain = "11111111-2222-3333-4444-555555555555.consul"
    static let ordersID = "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/orders"
    static let callerID = "spiffe://\(trustDomain)/ns/default/dc/dc1/svc/caller"

    struct Rig {
        let dialer: TunnelDialer
        let listeners: UpstreamListeners
        let upstream: Upstream
        let tls: TunnelTLS
        var port: Int { upstream.localPort }

        func stop() async {
            await listeners.stopAccepting()
            listeners.closeAll()
            dialer.stop()
        }
    }

    static func ordersLeaf(_ ca: TestCA) throws -> TestLeaf {
        try ca.issueLeaf(commonName: "orders", dnsNames: [], ipAddresses: [], uris: [ordersID])
    }

    static func tls(_ ca: TestCA, version: Int = 1) throws -> TunnelTLS {
        let leaf = try ca.issueLeaf(commonName: "caller", dnsNames: [], ipAddresses: [], uris: [callerID])
        let json =
            #"{"privateKeyPEM":\#(try TunnelTLSTests.quoted(leaf.keyPEM)),"certPEM":\#(try TunnelTLSTests.quoted(leaf.certificatePEM)),"rootCertPEM":\#(try TunnelTLSTests.quoted(ca.pem)),"trustDomain":"\#(trustDomain)"}"#
        return try TunnelTLS(data: try MeshTLSData(json: json, now: Date()), version: version)
    }

    /// A dialer to 127.0.0.1:`peerPort` and (when `listen`) the listener of `orders:<free port>`.
    static func rig(ca: TestCA, peerPort: Int, warm: Int, listen: Bool = true, apply: Bool = true) async throws -> Rig {
        let localPort = try ListenerPorts.free()
        let settings = try ExtensionSettings(environment: [
            "CONSUL_MESH_GATEWAY_URI": "127.0.0.1:\(peerPort)", "CONSUL_EXTENSION_DATA_PREFIX": "/data",
            "CONSUL_SERVICE_NAME": "caller", "CONSUL_SERVICE_UPSTREAMS": "orders:\(localPort)",
            "CONSUL_EXTENSION_WARM_CONNECTIONS": "\(warm)",
        ])
        let dialer = TunnelDialer(settings: settings, eventLoop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "review"))
        let listeners = UpstreamListeners(dialer: dialer, logger: Logger(label: "review"))
        let tls = try Self.tls(ca)
        if apply { dialer.use(tls, upstreams: settings.upstreams) }
        if listen { try await listeners.bind(settings.upstreams, timeout: .seconds(3)) }
        return Rig(dialer: dialer, listeners: listeners, upstream: settings.upstreams[0], tls: tls)
    }

    /// Reads until EOF/reset/timeout; the number of bytes.
    static func drain(_ client: LocalClient) -> Int {
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(client.fd, $0.baseAddress, $0.count) }
            if n <= 0 { return total }
            total += n
        }
    }

    // MARK: 1. The function half-closes (or closes) while its tunnel is being dialled.

    /// With autoRead off, NIO still drains the socket on EPOLLRDHUP (readEOF0) and fires the bytes
    /// and `inputClosed` through the pipeline; `LocalConnection` does not hold them: the request is
    /// dropped and the FIN never reaches the peer.
    @Test func aRequestSentWithAFINBeforeTheTunnelIsUpReachesThePeer() async throws {
        let ca = try TestCA()
        let peer = try await MeshUpstreamServer(leaf: try Self.ordersLeaf(ca), clientRoots: [ca])
        let rig = try await Self.rig(ca: ca, peerPort: peer.port, warm: 0)
        try await withTeardown(
            {
                let client = try LocalClient(port: rig.port)
                defer { client.close() }
                client.send("hello\n")
                client.shutdownWrite()
                let reply = client.readToEnd()  // up to 10 s (SO_RCVTIMEO)
                #expect(reply == "hello\nbye\n", "request and FIN must reach the peer; got \(String(describing: reply)), peer received \(peer.bytesReceived) bytes")
            },
            teardown: {
                await rig.stop()
                await peer.shutdown()
            })
    }

    /// A function that gives up (closes) while the dial is in progress: the tunnel is joined to a
    /// half-closed local socket whose EOF was swallowed, and both stay open until the peer closes.
    @Test func aFunctionConnectionClosedDuringTheDialLeavesNothingOpen() async throws {
        let ca = try TestCA()
        let peer = try await MeshUpstreamServer(leaf: try Self.ordersLeaf(ca), clientRoots: [ca])
        let rig = try await Self.rig(ca: ca, peerPort: peer.port, warm: 0)
        try await withTeardown(
            {
                let client = try LocalClient(port: rig.port)
                client.close()
                try? await eventually { peer.handshakes == 1 && rig.listeners.openCount == 0 }
                #expect(peer.handshakes == 1)
                #expect(rig.listeners.openCount == 0, "the function's socket (CLOSE_WAIT) and the tunnel are leaked")
            },
            teardown: {
                await rig.stop()
                await peer.shutdown()
            })
    }

    // MARK: 2. Relay end: pending writes to the function are discarded.

    /// The function sends a request, half-closes and reads only a second later; the peer answers
    /// several MiB, then close_notify and FIN. Once the peer's close_notify ends the second
    /// direction, `RelayHandler.finish` (and `tunnel.closeFuture -> local.close`) close the local
    /// channel at once: what NIO had not yet written to the function's socket is dropped, and the
    /// function sees a clean FIN after a truncated answer.
    @Test(arguments: [6 << 20, 24 << 20])
    func theAnswerAfterTheFunctionsFINIsNotCutOffWhenThePeerCloses(size: Int) async throws {
        let ca = try TestCA()
        let peer = try await EdgePeer(leaf: try Self.ordersLeaf(ca), clientRoots: [ca], mode: .answerOnEOF(size))
        let rig = try await Self.rig(ca: ca, peerPort: peer.port, warm: 0)
        try await withTeardown(
            {
                let client = try LocalClient(port: rig.port, receiveBuffer: 4096)
                defer { client.close() }
                client.send("GET\n")
                // The tunnel is up and joined first (see the test above for a FIN sent earlier): the
                // peer's echo has come back through it.
                #expect(client.read(count: 4) == "GET\n")
                client.shutdownWrite()
                // The function reads late: the scenario itself (the peer answers and closes meanwhile).
                try await Task.sleep(for: .seconds(1))
                let total = Self.drain(client)
                #expect(total == size, "the function got \(total) of \(size) bytes of the answer")
            },
            teardown: {
                await rig.stop()
                await peer.shutdown()
            })
    }

    // MARK: 3. Spares.

    /// A spare whose peer closed it (close_notify and FIN: idle timeout, sidecar restart) stays
    /// `isActive` because the channel allows half-closure, so its closeFuture never fires and
    /// `connect` takes it: the function gets an immediate EOF instead of a working tunnel.
    @Test func aSpareClosedByItsPeerIsNotHandedToTheFunction() async throws {
        let ca = try TestCA()
        let peer = try await EdgePeer(leaf: try Self.ordersLeaf(ca), clientRoots: [ca], mode: .closeIdle(.milliseconds(500)))
        let rig = try await Self.rig(ca: ca, peerPort: peer.port, warm: 1)
        try await withTeardown(
            {
                try await eventually { peer.handshakes == 1 }
                // The peer ends the idle spare; the dialer lets it go.
                try await eventually { rig.dialer.spareCount(rig.upstream) == 0 }
                let client = try LocalClient(port: rig.port)
                defer { client.close() }
                client.send("hello\n")
                #expect(client.read(count: 6) == "hello\n", "a spare the peer had closed was used")
            },
            teardown: {
                await rig.stop()
                await peer.shutdown()
            })
    }

    /// What a spare's peer sends is held in `TunnelStart` without limit (autoRead stays on): a peer
    /// can make the extension buffer any amount while no function connection exists.
    @Test func aSpareDoesNotBufferWithoutLimit() async throws {
        let ca = try TestCA()
        let peer = try await EdgePeer(leaf: try Self.ordersLeaf(ca), clientRoots: [ca], mode: .stream(64 << 20))
        let rig = try await Self.rig(ca: ca, peerPort: peer.port, warm: 1, listen: false)
        try await withTeardown(
            {
                try await eventually { peer.handshakes == 1 }
                // Nothing to wait for: without a limit the 64 MiB are read within this time.
                try await Task.sleep(for: .seconds(3))
                #expect(!peer.streamed, "64 MiB were read into memory by an idle spare")
            },
            teardown: {
                await rig.stop()
                await peer.shutdown()
            })
    }

    /// New data while a spare of the old data is being dialled: `use` counts that dial as one of
    /// the new data's spares; it is then thrown away and nothing is dialled in its place.
    @Test func newDataDuringASpareDialStillGetsASpare() async throws {
        let ca = try TestCA()
        let peer = try await MeshUpstreamServer(leaf: try Self.ordersLeaf(ca), clientRoots: [ca])
        let rig = try await Self.rig(ca: ca, peerPort: peer.port, warm: 1, listen: false, apply: false)
        try await withTeardown(
            {
                rig.dialer.use(rig.tls, upstreams: [rig.upstream])
                rig.dialer.use(try Self.tls(ca, version: 2), upstreams: [rig.upstream])
                try? await eventually { peer.handshakes == 2 }
                #expect(peer.handshakes == 2, "only the old data's spare was dialled")
                let (channel, spare) = try await rig.dialer.connect(rig.upstream).get()
                try? await channel.close()
                #expect(spare, "no spare for the new data")
            },
            teardown: {
                await rig.stop()
                await peer.shutdown()
            })
    }
}

/// A TLS peer presenting `leaf`: `.closeIdle` closes (close_notify + FIN) a connection that sent
/// nothing within the delay, else echoes; `.stream` writes `count` bytes right after the handshake.
final class EdgePeer: Sendable {
    enum Mode: Sendable {
        case closeIdle(TimeAmount)
        case stream(Int)
        /// On the client's close_notify: `count` bytes, then close_notify and FIN.
        case answerOnEOF(Int)

    }

    private let channel: any Channel
    private let handshakeCount: NIOLockedValueBox<Int>
    private let streamedAll: NIOLockedValueBox<Bool>
    let port: Int

    init(leaf: TestLeaf, clientRoots: [TestCA], mode: Mode) async throws {
        var configuration = try leaf.serverTLSConfiguration()
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(try clientRoots.map { try $0.nioCertificate })
        // After its close_notify, the TCP connection is closed at once (as Envoy does).
        configuration.shutdownTimeout = .milliseconds(10)
        let context = try NIOSSLContext(configuration: configuration)
        let handshakes = NIOLockedValueBox(0)
        let streamed = NIOLockedValueBox(false)
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOSSLServerHandler(context: context), PeerHandler(mode: mode, handshakes: handshakes, streamed: streamed)
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        handshakeCount = handshakes
        streamedAll = streamed
        port = channel.localAddress!.port!
    }

    var handshakes: Int { handshakeCount.withLockedValue { $0 } }
    var streamed: Bool { streamedAll.withLockedValue { $0 } }

    func shutdown() async { try? await channel.close() }

    final class PeerHandler: ChannelInboundHandler, @unchecked Sendable {
        // @unchecked: used on its channel's event loop only.
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let mode: Mode
        let handshakes: NIOLockedValueBox<Int>
        let streamed: NIOLockedValueBox<Bool>
        var gotData = false

        init(mode: Mode, handshakes: NIOLockedValueBox<Int>, streamed: NIOLockedValueBox<Bool>) {
            self.mode = mode
            self.handshakes = handshakes
            self.streamed = streamed
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            switch event {
            case TLSUserEvent.handshakeCompleted:
                handshakes.withLockedValue { $0 += 1 }
                switch mode {
                case .closeIdle(let delay):
                    context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                        if !self.gotData { context.close(promise: nil) }
                    }
                case .stream(let count):
                    let chunk = ByteBuffer(repeating: UInt8(ascii: "z"), count: 1 << 20)
                    var writes: [EventLoopFuture<Void>] = []
                    for _ in 0..<(count >> 20) { writes.append(context.write(wrapOutboundOut(chunk))) }
                    context.flush()
                    let streamed = self.streamed
                    EventLoopFuture.andAllSucceed(writes, on: context.eventLoop).whenSuccess { streamed.withLockedValue { $0 = true } }
                case .answerOnEOF:
                    break
                }
            case ChannelEvent.inputClosed:
                if case .answerOnEOF(let count) = mode {
                    let answer = ByteBuffer(repeating: UInt8(ascii: "z"), count: count)
                    context.writeAndFlush(wrapOutboundOut(answer)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                } else {
                    context.close(promise: nil)
                }
            default:
                context.fireUserInboundEventTriggered(event)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            gotData = true
            context.writeAndFlush(data, promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}

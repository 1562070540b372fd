import GatewayCore
import NIOCore
import NIOSSL
import Synchronization
import TestSupport

/// A mesh mTLS connection that records the raw bytes it receives (HTTP/2 frames are binary).
final class RawConnection: Sendable {
    let connection: RecordingConnection
    private let recorder = RawByteRecorder()

    static func open(_ gateway: GatewayFixture, service: String, alpn: [String]) async throws -> RawConnection {
        try await open(tls: gateway.tls, port: gateway.port, service: service, alpn: alpn)
    }

    static func open(tls: TLSFixture, port: Int, service: String, alpn: [String]) async throws -> RawConnection {
        let connection = try await RecordingConnection.open(tls: tls, port: port, service: service, alpn: alpn, records: false)
        let raw = RawConnection(connection: connection)
        try await connection.channel.pipeline.addHandler(raw.recorder).get()
        return raw
    }

    private init(connection: RecordingConnection) {
        self.connection = connection
    }

    var received: [UInt8] { recorder.bytes }

    func send(_ bytes: [UInt8]) async throws {
        try await connection.channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func closedByGateway(within limit: Duration) async -> Bool {
        await connection.closedByGateway(within: limit)
    }

    /// Waits until `condition` holds for the bytes received, or `limit` passes; returns them.
    func waitFor(within limit: Duration = .seconds(5), _ condition: ([UInt8]) -> Bool) async throws -> [UInt8] {
        let deadline = ContinuousClock.now + limit
        while !condition(received) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        return received
    }

    func close() async {
        try? await connection.channel.close()
    }
}

final class RawByteRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = Mutex<[UInt8]>([])
    var bytes: [UInt8] { received.withLock { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received.withLock { $0 += buffer.readableBytesView }
    }
}

import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayCore

@Suite("Connection output")
struct ConnectionOutputTests {
    /// A connection that wrote an answer and closed is let go at once. Its progress check is a
    /// scheduled task, which keeps what it captures (the output, the channel, its pipeline) until
    /// it fires: left to fire, it held every connection closed in the last quarter of the send
    /// timeout, tens of MB at a few hundred new connections a second.
    @Test func aClosedConnectionIsNotHeldByItsProgressCheck() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        weak var released: ConnectionOutput?
        do {
            let output = ConnectionOutput(channel: channel, settings: ProcessingSettings(), metrics: GatewayMetrics())
            try output.install()
            released = output
            let written = channel.eventLoop.makePromise(of: Void.self)
            output.writing(10, done: written.futureResult)
            written.succeed(())
        }
        #expect(released != nil, "an open connection keeps its check")
        try channel.close().wait()
        channel.embeddedEventLoop.run()
        #expect(released == nil, "the closed connection's output is gone, its check cancelled")
    }
}

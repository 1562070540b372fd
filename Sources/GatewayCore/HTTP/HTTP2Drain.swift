import NIOHTTP2

/// How an HTTP/2 connection ends when the gateway drains it (`ChannelShouldQuiesceEvent`: its
/// service is no longer served, or the gateway stops), without doing it: `HTTP2ConnectionHandler`
/// feeds it the connection's events and carries out the actions. The sequence is NIO's
/// `NIOHTTP2ServerConnectionManagementHandler`'s (RFC 9113 §6.8), which the gateway used before;
/// done here, no handler of its own sits in every frame's and every stream event's way.
///
/// 1. GOAWAY naming the largest stream ID, then a PING: until it has read a GOAWAY a client may
///    still open streams, so the first one refuses none.
/// 2. The PING's acknowledgement means the client has read that GOAWAY. A second GOAWAY names the
///    last stream the client opened, and the connection closes when no stream is open: at once, or
///    as the last one ends.
///
/// The handler's grace timer, started with the first GOAWAY, closes the connection anyway when the
/// drain has lasted the grace time: streams opened before the second GOAWAY are served within it.
/// (NIO's handler started its timer only on the acknowledgement, so a client that never
/// acknowledged the PING kept a draining connection open, and could open streams on it, for as long
/// as it liked.)
struct HTTP2Drain {
    enum State: Equatable {
        case serving
        /// The first GOAWAY and the PING are sent; the PING's acknowledgement is awaited.
        case announced
        /// The second GOAWAY is sent: the connection closes as its last stream ends.
        case closing
        case closed
    }

    private(set) var state = State.serving
    /// The last stream the client opened: the second GOAWAY's last stream ID.
    private(set) var lastStreamID = HTTP2StreamID.rootStream
    /// The PING's payload, so that only its own acknowledgement counts: drawn as the drain starts
    /// (most connections are never drained), unless given.
    private(set) var pingData: HTTP2PingData?

    init(pingData: HTTP2PingData? = nil) {
        self.pingData = pingData
    }

    enum Action: Equatable {
        case none
        /// Write GOAWAY(largest stream ID, NO_ERROR) and PING(`data`), flush, and start the grace
        /// timer.
        case sendGoAwayAndPing(HTTP2PingData)
        /// Write GOAWAY(`lastStreamID`, NO_ERROR) and flush; then close at once (`close`).
        case sendGoAway(lastStreamID: HTTP2StreamID, close: Bool)
        /// Close, once what was written before is flushed (a loop task later: the frame that ended
        /// the last stream is written, and its flush comes at the end of the round).
        case close
    }

    /// The client opened stream `id`.
    mutating func streamOpened(_ id: HTTP2StreamID) {
        if id > lastStreamID { lastStreamID = id }
    }

    /// The gateway drains the connection.
    mutating func quiesce() -> Action {
        guard state == .serving else { return .none }
        state = .announced
        let data = pingData ?? HTTP2PingData(withInteger: .random(in: .min ... .max))
        pingData = data
        return .sendGoAwayAndPing(data)
    }

    /// The client acknowledged a PING carrying `data`; `openStreams` are still open.
    mutating func receivedPingAck(_ data: HTTP2PingData, openStreams: Int) -> Action {
        guard state == .announced, data == pingData else { return .none }
        state = openStreams == 0 ? .closed : .closing
        return .sendGoAway(lastStreamID: lastStreamID, close: openStreams == 0)
    }

    /// A stream closed; `openStreams` are still open.
    mutating func streamClosed(openStreams: Int) -> Action {
        guard state == .closing, openStreams == 0 else { return .none }
        state = .closed
        return .close
    }
}

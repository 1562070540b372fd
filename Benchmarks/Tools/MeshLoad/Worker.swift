import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One request slot's load loop, entirely on its event loop (no locks): sends a request, waits for
/// its response, records the latency, sends the next. Over HTTP/1.1 a slot is a connection (no
/// pipelining, as sidecars do); over HTTP/2 it is one stream at a time on a shared `HTTP2Session`.
/// Open loop: requests are due every `interval`; one that cannot start on time waits, and its
/// latency counts from when it was due.
final class Worker: @unchecked Sendable {
    // @unchecked: every mutable field is touched on `eventLoop` only.
    struct Result: Sendable {
        var histogram: Histogram<UInt64>
        var completed: Int
        var errors: [String: Int]
    }

    let target: Target
    let eventLoop: any EventLoop
    let start: NIODeadline
    let measureFrom: NIODeadline
    let end: NIODeadline
    let interval: TimeAmount?
    let reconnectEachRequest: Bool
    let session: HTTP2Session?

    private var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    private var completed = 0
    private var errors: [String: Int] = [:]
    private var channel: (any Channel)?
    private var connecting = false
    /// When the request in flight was due (open loop) or sent (closed loop).
    private var inFlight: NIODeadline?
    private var due: [NIODeadline] = []
    private var done: EventLoopPromise<Result>?

    init(target: Target, eventLoop: any EventLoop, start: NIODeadline, measureFrom: NIODeadline, end: NIODeadline, interval: TimeAmount?, reconnectEachRequest: Bool, session: HTTP2Session?) {
        self.target = target
        self.eventLoop = eventLoop
        self.start = start
        self.measureFrom = measureFrom
        self.end = end
        self.interval = interval
        self.reconnectEachRequest = reconnectEachRequest
        self.session = session
    }

    func run() async throws -> Result {
        try await eventLoop.flatSubmit {
            let promise = self.eventLoop.makePromise(of: Result.self)
            self.done = promise
            self.session?.retain()
            self.eventLoop.scheduleTask(deadline: self.start) { self.begin() }
            // A hard stop: whatever is still in flight this long after the end is a timeout.
            self.eventLoop.scheduleTask(deadline: self.end + .seconds(10)) {
                if self.inFlight != nil { self.count("timeout") }
                self.finish()
            }
            return promise.futureResult
        }.get()
    }

    private func begin() {
        if let interval {
            tick(at: start, interval: interval)
        } else {
            sendNext()
        }
    }

    private func tick(at time: NIODeadline, interval: TimeAmount) {
        guard time < end else { return }
        due.append(time)
        if inFlight == nil { sendNext() }
        eventLoop.scheduleTask(deadline: time + interval) { self.tick(at: time + interval, interval: interval) }
    }

    private func sendNext() {
        guard done != nil, inFlight == nil else { return }
        let now = NIODeadline.now()
        if now >= end {
            finish()
            return
        }
        let startedAt: NIODeadline
        if interval != nil {
            guard !due.isEmpty else { return }
            startedAt = due.removeFirst()
        } else {
            startedAt = now
        }
        inFlight = startedAt
        if let session {
            openStream(on: session)
            return
        }
        guard let channel, channel.isActive else {
            connect()
            return
        }
        write(on: channel)
    }

    private func connect() {
        guard !connecting else { return }
        connecting = true
        let target = self.target
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = target.tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: target.sni))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseHandler(worker: self))
                }
            }
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                self.connecting = false
                switch result {
                case .success(let channel):
                    self.channel = channel
                    if self.inFlight != nil { self.write(on: channel) }
                case .failure:
                    self.failed("connect")
                }
            }
    }

    private func openStream(on session: HTTP2Session) {
        session.openStream(handler: ResponseHandler(worker: self)) { result in
            switch result {
            case .success(let stream):
                self.channel = stream
                self.write(on: stream)
            case .failure:
                self.failed("connect")
            }
        }
    }

    private func write(on channel: any Channel) {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: target.sni ?? target.host)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(target.body.readableBytes))
        if reconnectEachRequest { headers.add(name: "connection", value: "close") }
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: target.method), uri: target.path, headers: headers)), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(target.body)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    fileprivate func responded(status: Int) {
        guard let startedAt = inFlight else { return }
        inFlight = nil
        let now = NIODeadline.now()
        if startedAt >= measureFrom && startedAt < end {
            if (200..<300).contains(status) {
                completed += 1
                _ = histogram.record(UInt64(max(0, (now - startedAt).nanoseconds / 1000)))
            } else {
                count("status_\(status)")
            }
        }
        if reconnectEachRequest {
            let old = channel
            channel = nil
            old?.close(promise: nil)
        } else if session != nil {
            channel = nil  // the stream ended with its response
        }
        sendNext()
    }

    fileprivate func connectionClosed(_ channel: any Channel) {
        guard self.channel === channel else { return }
        self.channel = nil
        if inFlight != nil { failed("closed") }
    }

    fileprivate func failed(_ kind: String) {
        if let startedAt = inFlight, startedAt >= measureFrom, startedAt < end { count(kind) }
        inFlight = nil
        channel?.close(promise: nil)
        channel = nil
        // Back off a little so a refusing server is not hammered in a tight loop.
        eventLoop.scheduleTask(in: .milliseconds(10)) { self.sendNext() }
    }

    private func count(_ kind: String) {
        errors[kind, default: 0] += 1
    }

    private func finish() {
        guard let promise = done else { return }
        done = nil
        channel?.close(promise: nil)
        session?.release()
        promise.succeed(Result(histogram: histogram, completed: completed, errors: errors))
    }
}

/// Reports each complete response (and closes and errors) to its worker.
final class ResponseHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let worker: Worker
    private var status = 0

    init(worker: Worker) {
        self.worker = worker
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = Int(head.status.code)
        case .body: break
        case .end: worker.responded(status: status)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        worker.connectionClosed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        worker.failed(error is NIOSSLError ? "tls" : "io")
        context.close(promise: nil)
    }
}

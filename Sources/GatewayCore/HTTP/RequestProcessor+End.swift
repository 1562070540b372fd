import Foundation
import LambdaPayload
import NIOCore
import NIOHTTP1

/// One request as its handler sees it, from its first byte until its answer is written.
struct RequestExchange {
    var started: NIODeadline
    /// Nil for bytes that never became a request head (a parse error).
    var head: HTTPRequestHead?
    var requestBodyBytes = 0
    /// When the answer's first byte was handed to the connection.
    var responded: NIODeadline?

    init(started: NIODeadline = .now(), head: HTTPRequestHead? = nil) {
        self.started = started
        self.head = head
    }
}

/// The end of every request: once its answer is written (or failed to be), the handlers report it
/// here, for `/metrics` and, when the access log is on, for its line.
extension RequestProcessor {
    /// `written`: the socket took the whole answer (false: the client went away first, Envoy's `DC`).
    func ended(_ exchange: RequestExchange, answer: Answer, responseBodyBytes: Int, written: Bool, connection: ClientConnection, now: NIODeadline = .now()) {
        let nanoseconds = Int((now - exchange.started).nanoseconds)
        (connection.metrics ?? metrics.service(connection.serviceName)).record(
            GatewayMetrics.RequestRecord(
                service: connection.serviceName, status: answer.response.status, outcome: answer.outcome, durationNanoseconds: nanoseconds,
                lambdaCallNanoseconds: answer.lambdaCallNanoseconds, lambdaErrorType: answer.lambdaErrorType,
                requestBodyBytes: exchange.requestBodyBytes, responseBodyBytes: responseBodyBytes, streamed: answer.streamed
            )
        )
        guard let accessLog, let settings = accessLog.settings else { return }
        let wallNow = Int64(Date().timeIntervalSince1970 * 1e9)
        var entry = AccessLogEntry(startTime: WallClockTime(nanosecondsSinceEpoch: wallNow - Int64(nanoseconds)), connection: connection.accessLog)
        entry.duration = .nanoseconds(nanoseconds)
        entry.responseDuration = exchange.responded.map { Duration.nanoseconds(($0 - exchange.started).nanoseconds) }
        entry.upstreamServiceTime = answer.lambdaCallNanoseconds.map { .nanoseconds($0) }
        if let head = exchange.head {
            entry.method = head.method.rawValue
            entry.path = Self.loggable(head.uri)
            entry.protocolName = head.version.major == 2 ? "HTTP/2" : RequestReader.protocolName(head.version)
            if settings.format.usesRequestHeaders {
                // Only the fields the format reads, each at most `maximumLoggedValueBytes`.
                let names = settings.format.requestHeaderNames
                for field in head.headers where names.contains(where: { field.name.asciiCaseInsensitiveEquals($0) }) {
                    entry.requestHeaders.append(HTTPField(field.name, Self.loggable(field.value)))
                }
            }
        }
        if settings.format.usesResponseHeaders { entry.responseHeaders = answer.response.headers }
        entry.responseCode = answer.response.status
        entry.responseFlags = written ? answer.flags : answer.flags.union(.downstreamConnectionTermination)
        entry.responseCodeDetails = answer.details
        entry.bytesReceived = exchange.requestBodyBytes
        entry.bytesSent = written ? responseBodyBytes : 0
        entry.upstreamHost = answer.upstreamHost
        entry.upstreamLocalAddress = answer.upstreamLocalAddress
        entry.traceID = answer.traceID
        entry.upstreamRequestAttemptCount = answer.attempts
        entry.upstreamTransportFailureReason = answer.transportFailureReason
        entry.upstreamCluster = connection.serviceName
        accessLog.record(entry, settings: settings)
    }
}

extension RequestProcessor {
    /// The most of one header value an access-log entry keeps (Envoy has no cap; a line of 60 KiB
    /// per request would let one client fill the log and the writer's buffer).
    static let maximumLoggedValueBytes = 4096

    static func loggable(_ value: String) -> String {
        guard value.utf8.count > maximumLoggedValueBytes else { return value }
        // A character cut in two becomes U+FFFD.
        return String(decoding: value.utf8.prefix(maximumLoggedValueBytes), as: UTF8.self)
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to `Int` (a duration's attoseconds would overflow it past 292 years).
    var nanosecondsClamped: Int {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int.max : Int(product + attoseconds / 1_000_000_000)
    }
}

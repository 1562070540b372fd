import Atomics
import ConsulAPI
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The access log as Consul configures it on Envoy (docs/COMPATIBILITY.md, `AccessLogs`): `AccessLogs` of
/// `proxy-defaults/global`, or the static file's `accessLogs:`, applied live as snapshots are
/// published. A configuration that cannot be used (both formats, an unknown operator, an unknown
/// type) keeps the previous one in effect and is logged once.
///
/// The request path asks `settings` (one atomic load; nil when the log is off, which then costs
/// nothing more) and hands finished entries to `record`; the writer thread does the rest.
public final class AccessLog: Service, Sendable {
    final class Box: AtomicReference, Sendable {
        let settings: AccessLogSettings?
        init(_ settings: AccessLogSettings?) { self.settings = settings }
    }

    private let current = ManagedAtomic(Box(nil))
    /// The configuration last seen in a snapshot, applied or not: a snapshot that does not change it
    /// (most do not) is not compiled again, and a bad one is logged once.
    private let lastSeen = Mutex<AccessLogsConfig??>(.none)
    private let writer: AccessLogWriter
    private let listenerLimit: ListenerLineLimit
    private let metrics: GatewayMetrics
    private let logger: Logger

    /// Follows `store`'s snapshots; reopens the file sink on each SIGHUP of `hangups`.
    /// `bufferLines`: entries that may wait for a slow sink before new ones are dropped.
    public init(store: SnapshotStore, hangups: HangupSignal?, metrics: GatewayMetrics, logger: Logger, bufferLines: Int = 16_384, listenerLinesPerSecond: Int = 20) {
        self.metrics = metrics
        self.logger = logger
        self.writer = AccessLogWriter(capacity: bufferLines, metrics: metrics, logger: logger)
        self.listenerLimit = ListenerLineLimit(perSecond: listenerLinesPerSecond)
        apply(store.snapshot.accessLogs)
        store.onPublish { [weak self] _, snapshot in self?.apply(snapshot.accessLogs) }
        let writer = self.writer
        hangups?.subscribe { writer.reopen() }
    }

    /// The settings in effect, nil when the access log is off.
    public var settings: AccessLogSettings? {
        current.load(ordering: .acquiring).settings
    }

    /// Applies `config` if it differs from the last one seen. Under one lock, compile and swap
    /// included, so two publications can never leave the older settings in effect.
    func apply(_ config: AccessLogsConfig?) {
        lastSeen.withLock { lastSeen in
            if case .some(let seen) = lastSeen, seen == config { return }
            lastSeen = .some(config)
            do {
                let settings = try AccessLogSettings.compile(config)
                let previous = current.exchange(Box(settings), ordering: .acquiringAndReleasing).settings
                if let settings {
                    logger.notice("access log on", metadata: ["sink": "\(settings.sink)", "listener_logs": "\(settings.listenerLogs)"])
                } else if previous != nil {
                    logger.notice("access log off")
                }
            } catch {
                logger.error("access log configuration refused; the previous one stays in effect", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Writes `entry` with `settings` (those the request found in effect), off the event loop.
    public func record(_ entry: AccessLogEntry, settings: AccessLogSettings) {
        writer.submit(AccessLogWriter.Item(entry: entry, settings: settings))
    }

    /// A connection refused before any request (unknown or missing SNI, a refused client
    /// certificate): a line with flag `NR` and `details` when listener logs are on, at most
    /// `listenerLinesPerSecond` a second (a scan makes them by the thousand; the rest are counted).
    public func recordRefusedConnection(on channel: any Channel, sni: String?, details: String) {
        guard let settings, settings.listenerLogs else { return }
        guard listenerLimit.admit() else {
            metrics.accessLogLinesDropped(1, .rateLimited)
            return
        }
        let connection = AccessLogConnection(
            localAddress: AccessLogConnection.address(channel.localAddress), remoteAddress: AccessLogConnection.address(channel.remoteAddress), requestedServerName: sni
        )
        var entry = AccessLogEntry(startTime: WallClockTime(nanosecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1e9)), connection: connection)
        entry.responseFlags = .noRouteFound
        entry.responseCodeDetails = details
        record(entry, settings: settings)
    }

    /// Runs until graceful shutdown, then writes what is buffered.
    public func run() async throws {
        try? await gracefulShutdown()
        writer.stop()
    }
}

/// At most `perSecond` listener lines in each second.
final class ListenerLineLimit: Sendable {
    private let perSecond: Int
    private let window = Mutex<(second: Int64, count: Int)>((0, 0))

    init(perSecond: Int) {
        self.perSecond = perSecond
    }

    func admit(now: NIODeadline = .now()) -> Bool {
        let second = now.uptimeNanoseconds / 1_000_000_000
        return window.withLock { window in
            if window.second != Int64(second) { window = (Int64(second), 0) }
            window.count += 1
            return window.count <= perSecond
        }
    }
}

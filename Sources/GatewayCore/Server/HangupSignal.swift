import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// SIGHUP, trapped for the life of the serving process in every mode, and passed on to whoever
/// asked: the static config file is read again, the access log's file is reopened (logrotate's
/// `postrotate`). SIGHUP's default action ends a process, and `systemctl reload` sends it
/// (`conf/systemd`): a gateway must never stop on it, whatever it serves from.
///
/// Trapped when made (`trap`), before any listener starts, so no SIGHUP during start-up can end the
/// process either.
public final class HangupSignal: Service, Sendable {
    private let signals: UnixSignalsSequence
    private let subscribers = Mutex<[@Sendable () -> Void]>([])
    private let logger: Logger

    private init(signals: UnixSignalsSequence, logger: Logger) {
        self.signals = signals
        self.logger = logger
    }

    /// Traps SIGHUP from now on.
    public static func trap(logger: Logger) async -> HangupSignal {
        HangupSignal(signals: await UnixSignalsSequence(trapping: .sighup), logger: logger)
    }

    /// Runs `action` on every SIGHUP from now on, in the order the subscriptions were made.
    public func subscribe(_ action: @escaping @Sendable () -> Void) {
        subscribers.withLock { $0.append(action) }
    }

    /// Passes each SIGHUP on until graceful shutdown; the signal stays trapped after it.
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            for await _ in self.signals {
                let actions = self.subscribers.withLock { $0 }
                for action in actions { action() }
                // After the actions: once this line is out, a reopened log is in effect.
                self.logger.notice("SIGHUP received", metadata: ["actions": "\(actions.count)"])
            }
        }
    }
}

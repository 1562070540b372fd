import Logging
import NIOCore
import Synchronization

/// A log line that a peer can cause before it is authenticated (a refused handshake): written at
/// most `burst` times per `window`; the rest are counted and one summary line per window says how
/// many there were and shows the last value. A client that refuses a million handshakes a second
/// costs the log one line per window, not a million.
public final class RateLimitedLog: Sendable {
    struct Window {
        var started: NIODeadline
        var written = 0
        var suppressed = 0
        var lastSample = ""
        var summaryScheduled = false
    }

    let message: Logger.Message
    let level: Logger.Level
    let burst: Int
    let window: TimeAmount
    let logger: Logger
    private let state = Mutex<Window?>(nil)

    public init(_ message: Logger.Message, level: Logger.Level = .info, burst: Int = 5, window: TimeAmount = .seconds(10), logger: Logger) {
        self.message = message
        self.level = level
        self.burst = burst
        self.window = window
        self.logger = logger
    }

    /// Logs the line with `metadata`, or counts it. `sample` (already log-safe) is what the summary
    /// shows of the last suppressed occurrence; the summary is written from `eventLoop`.
    public func record(sample: String, metadata: Logger.Metadata, on eventLoop: any EventLoop, now: NIODeadline = .now()) {
        // Skip all bookkeeping when the level is off.
        guard logger.logLevel <= level else { return }
        enum Decision {
            case write
            case suppress(scheduleSummary: TimeAmount?)
        }
        let decision: Decision = state.withLock { state in
            if state == nil || now - state!.started >= window {
                // A window whose summary is still due keeps counting until that summary is written.
                if let current = state, current.summaryScheduled {
                    state!.suppressed += 1
                    state!.lastSample = sample
                    return .suppress(scheduleSummary: nil)
                }
                state = Window(started: now)
            }
            if state!.written < burst {
                state!.written += 1
                return .write
            }
            state!.suppressed += 1
            state!.lastSample = sample
            if state!.summaryScheduled { return .suppress(scheduleSummary: nil) }
            state!.summaryScheduled = true
            return .suppress(scheduleSummary: state!.started + window - now)
        }
        switch decision {
        case .write:
            logger.log(level: level, message, metadata: metadata)
        case .suppress(let delay?):
            eventLoop.scheduleTask(in: delay) { self.writeSummary() }
        case .suppress(nil):
            break
        }
    }

    private func writeSummary() {
        let (count, sample) = state.withLock { state -> (Int, String) in
            guard let window = state else { return (0, "") }
            state = nil
            return (window.suppressed, window.lastSample)
        }
        guard count > 0 else { return }
        logger.log(level: level, "\(message) (more, not logged one by one)", metadata: ["suppressed": "\(count)", "window": "\(window)", "last": "\(sample)"])
    }
}

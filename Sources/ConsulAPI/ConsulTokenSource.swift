import Foundation
import Synchronization

/// The ACL token to send: a fixed value, or a file re-read every 60 s and after `ACL not found`
/// (docs/DECISIONS.md D40), so tokens rotate without a restart.
final class ConsulTokenSource: Sendable {
    private let token: ConsulConfiguration.Token
    private let cached = Mutex<(value: String?, readAt: ContinuousClock.Instant)?>(nil)
    static let rereadInterval: Duration = .seconds(60)

    init(_ token: ConsulConfiguration.Token) {
        self.token = token
    }

    var current: String? {
        switch token {
        case .none: return nil
        case .value(let value): return value
        case .file(let path):
            let now = ContinuousClock.now
            if let cached = cached.withLock({ $0 }), now - cached.readAt < Self.rereadInterval {
                return cached.value
            }
            let value = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            cached.withLock { $0 = (value, now) }
            return value
        }
    }

    /// Forget the cached file contents (after `ACL not found`).
    func invalidate() {
        cached.withLock { $0 = nil }
    }
}

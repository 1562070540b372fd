import Foundation
import Logging

/// Serves a `StaticConfig` file instead of Consul: published once at start (an invalid file stops
/// the start with the error), then read again on each SIGHUP (`HangupSignal`). A reload that fails
/// keeps the last good snapshot and logs why, so a typo never takes services down.
public final class StaticConfigSource: Sendable {
    let path: String
    let store: SnapshotStore
    let logger: Logger

    /// Loads and publishes the file now; throws its first problem.
    public init(path: String, store: SnapshotStore, hangups: HangupSignal, logger: Logger) throws(StaticConfigError) {
        self.path = path
        self.store = store
        self.logger = logger
        try publish()
        hangups.subscribe { [self] in reload() }
    }

    func publish() throws(StaticConfigError) {
        let config = try StaticConfigFile.load(path: path)
        let snapshot = try config.snapshot(version: store.snapshot.version + 1, now: Date())
        store.publish(snapshot)
        logger.notice("static configuration loaded", metadata: ["file": "\(path)", "services": "\(snapshot.services.keys.sorted().joined(separator: ","))"])
    }

    /// Reads the file again; a file that fails keeps the snapshot being served.
    func reload() {
        do {
            try publish()
        } catch {
            logger.error("static configuration not reloaded; still serving the previous one", metadata: ["error": "\(error)"])
        }
    }
}

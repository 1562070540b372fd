import ConsulAPI

/// Consul's `AccessLogs` (docs/COMPATIBILITY.md, `AccessLogs`) compiled: where lines go and how they are written.
public struct AccessLogSettings: Sendable {
    /// Where lines are written.
    public enum Sink: Sendable, Hashable, CustomStringConvertible {
        case standardOutput
        case standardError
        case file(path: String)

        public var description: String {
            switch self {
            case .standardOutput: "stdout"
            case .standardError: "stderr"
            case .file(let path): "file \(path)"
            }
        }
    }

    public var sink: Sink
    public var format: AccessLogFormat
    /// Lines for connections refused before any request (Envoy's listener logs, flag `NR`).
    public var listenerLogs: Bool

    public init(sink: Sink, format: AccessLogFormat, listenerLogs: Bool) {
        self.sink = sink
        self.format = format
        self.listenerLogs = listenerLogs
    }

    /// Why a configuration cannot be applied; the previous one stays in effect.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// The settings `config` asks for, nil when it turns the access log off (absent, or not
    /// `Enabled`); throws what makes it unusable, as Consul would refuse it or naming the format's
    /// first problem.
    public static func compile(_ config: AccessLogsConfig?) throws(Invalid) -> AccessLogSettings? {
        guard let config, config.Enabled else { return nil }
        let sink: Sink
        switch config.Type {
        case "", "stdout": sink = .standardOutput
        case "stderr": sink = .standardError
        case "file":
            guard !config.Path.isEmpty else { throw Invalid(description: "AccessLogs.Type is file but AccessLogs.Path is empty") }
            sink = .file(path: config.Path)
        default:
            throw Invalid(description: "AccessLogs.Type \"\(LogSafe.text(config.Type, limit: 64))\" is not stdout, stderr or file")
        }
        let format: AccessLogFormat
        do {
            switch (config.JSONFormat.isEmpty, config.TextFormat.isEmpty) {
            case (false, false): throw Invalid(description: "AccessLogs sets both JSONFormat and TextFormat")
            case (false, true): format = try AccessLogFormat(json: config.JSONFormat)
            case (true, false): format = try AccessLogFormat(text: config.TextFormat)
            case (true, true): format = .consulDefault
            }
        } catch let error as Invalid {
            throw error
        } catch {
            throw Invalid(description: "AccessLogs format: \(error)")
        }
        return AccessLogSettings(sink: sink, format: format, listenerLogs: !config.DisableListenerLogs)
    }
}

/// A compiled access-log format: Consul's `TextFormat` or `JSONFormat` (docs/COMPATIBILITY.md, `AccessLogs`), or
/// Consul's default, turned once into segments that `render` fills from an `AccessLogEntry`.
///
/// Envoy's rules hold: a missing value is `-` in text and `null` in JSON; in JSON a value that is
/// exactly one numeric operator (`%RESPONSE_CODE%`, `%DURATION%`, `%BYTES_SENT%`...) is a number; a
/// JSON value mixing text and operators is a string in which a missing operator is `-`. Values from
/// the network can never split or forge a line (`AccessLogRenderer` says how they are escaped).
///
/// Two formats are equal when they compile to the same segments, so a snapshot can tell a changed
/// format from the one in effect. Whether a configuration entry has both formats is the caller's
/// to refuse.
public struct AccessLogFormat: Sendable, Hashable {
    let segments: [AccessLogSegment]

    /// Whether some operator reads `AccessLogEntry.requestHeaders`: when false, the request path need
    /// not copy them (`%REQ(:METHOD)%`, `%REQ(:PATH)%` and `%REQ(:SCHEME)%` read other fields).
    public var usesRequestHeaders: Bool { !requestHeaderNames.isEmpty }
    /// Whether some operator reads `AccessLogEntry.responseHeaders`. Consul's default does:
    /// `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%` takes that header when the response has one.
    public let usesResponseHeaders: Bool
    /// The lower-cased names of the request fields some operator reads, sorted: the request path
    /// copies only those into an entry (a request may carry 60 KiB of fields; a line uses a few),
    /// comparing each field's name without lower-casing it first.
    public let requestHeaderNames: [String]

    private init(segments: [AccessLogSegment]) {
        self.segments = segments
        usesResponseHeaders = segments.contains { $0.operator?.readsResponseHeaders == true }
        var names: Set<String> = []
        for segment in segments {
            guard case .requestHeader(let choice)? = segment.operator else { continue }
            for name in [choice.main, choice.alternative] {
                switch name {
                case .field(let lowered)?: names.insert(String(decoding: lowered, as: UTF8.self))
                case .authority?: names.formUnion([":authority", "host"])
                case .method?, .path?, .scheme?, .upstreamServiceTime?, nil: break
                }
            }
        }
        requestHeaderNames = names.sorted()
    }

    /// Compiles a `TextFormat`. Each line ends with exactly one newline, added when the format
    /// lacks it. `hostName` is `%HOSTNAME%`'s value; nil reads the machine's (only when the format
    /// uses it).
    public init(text format: String, hostName: String? = nil) throws(AccessLogFormatError) {
        var parser = AccessLogFormatParser(hostName: hostName)
        self.init(segments: try parser.compileText(format))
    }

    /// Compiles a `JSONFormat`: a JSON object whose string values hold operators; nested objects,
    /// numbers, booleans and `null` are allowed, arrays are not. Each line is one compact object
    /// with the format's keys in the format's order.
    public init(json format: String, hostName: String? = nil) throws(AccessLogFormatError) {
        var parser = AccessLogFormatParser(hostName: hostName)
        self.init(segments: try parser.compileJSON(format))
    }

    /// Appends the line for `entry`, ending in `\n`, to `buffer`.
    public func render(_ entry: AccessLogEntry, into buffer: inout [UInt8]) {
        AccessLogRenderer.render(segments, entry, into: &buffer)
    }

    /// Consul's default format, used when `AccessLogs` names neither `TextFormat` nor `JSONFormat`:
    /// its keys and operators in Consul's order (docs/COMPATIBILITY.md, `AccessLogs`), as `JSONFormat` text.
    public static let consulDefaultJSON: String = {
        let members: KeyValuePairs<String, String> = [
            "start_time": "%START_TIME%",
            "route_name": "%ROUTE_NAME%",
            "method": "%REQ(:METHOD)%",
            "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
            "protocol": "%PROTOCOL%",
            "response_code": "%RESPONSE_CODE%",
            "response_flags": "%RESPONSE_FLAGS%",
            "response_code_details": "%RESPONSE_CODE_DETAILS%",
            "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
            "bytes_received": "%BYTES_RECEIVED%",
            "bytes_sent": "%BYTES_SENT%",
            "duration": "%DURATION%",
            "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
            "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
            "user_agent": "%REQ(USER-AGENT)%",
            "request_id": "%REQ(X-REQUEST-ID)%",
            "authority": "%REQ(:AUTHORITY)%",
            "upstream_host": "%UPSTREAM_HOST%",
            "upstream_cluster": "%UPSTREAM_CLUSTER%",
            "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
            "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
            "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
            "requested_server_name": "%REQUESTED_SERVER_NAME%",
            "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        ]
        return "{" + members.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",") + "}"
    }()

    /// Consul's default format, compiled.
    public static let consulDefault: AccessLogFormat = {
        do {
            return try AccessLogFormat(json: consulDefaultJSON)
        } catch {
            preconditionFailure("Consul's default access-log format does not compile: \(error)")
        }
    }()
}

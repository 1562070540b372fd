/// One command operator of an access-log format (Envoy's access-log format strings documentation), its arguments resolved when
/// the format is compiled: what it reads from an `AccessLogEntry`.
enum AccessLogOperator: Sendable, Hashable {
    case startTime(AccessLogTimeFormat)
    case requestHeader(AccessLogHeaderChoice)
    case responseHeader(AccessLogHeaderChoice)
    /// `%HOSTNAME%`: the name read when the format was compiled.
    case hostName(String)

    case routeName
    case protocolName
    case responseCode
    case responseFlags
    case responseCodeDetails
    case connectionTerminationDetails
    case bytesReceived
    case bytesSent
    case duration
    case responseDuration
    case upstreamHost
    case upstreamCluster
    case upstreamLocalAddress
    case upstreamTransportFailureReason
    case upstreamRequestAttemptCount
    case downstreamLocalAddress
    case downstreamRemoteAddress
    case downstreamLocalAddressWithoutPort
    case downstreamRemoteAddressWithoutPort
    case requestedServerName
    case downstreamPeerURISAN
    case downstreamPeerSubject
    case downstreamTLSVersion
    case traceID

    /// The operators that take no argument, by their Envoy name. `START_TIME`, `REQ`, `RESP` and
    /// `HOSTNAME` are made by the parser, which reads their argument or the host name.
    static let withoutArgument: [String: AccessLogOperator] = [
        "ROUTE_NAME": .routeName,
        "PROTOCOL": .protocolName,
        "RESPONSE_CODE": .responseCode,
        "RESPONSE_FLAGS": .responseFlags,
        "RESPONSE_CODE_DETAILS": .responseCodeDetails,
        "CONNECTION_TERMINATION_DETAILS": .connectionTerminationDetails,
        "BYTES_RECEIVED": .bytesReceived,
        "BYTES_SENT": .bytesSent,
        "DURATION": .duration,
        "RESPONSE_DURATION": .responseDuration,
        "UPSTREAM_HOST": .upstreamHost,
        "UPSTREAM_CLUSTER": .upstreamCluster,
        "UPSTREAM_LOCAL_ADDRESS": .upstreamLocalAddress,
        "UPSTREAM_TRANSPORT_FAILURE_REASON": .upstreamTransportFailureReason,
        "UPSTREAM_REQUEST_ATTEMPT_COUNT": .upstreamRequestAttemptCount,
        "DOWNSTREAM_LOCAL_ADDRESS": .downstreamLocalAddress,
        "DOWNSTREAM_REMOTE_ADDRESS": .downstreamRemoteAddress,
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": .downstreamLocalAddressWithoutPort,
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": .downstreamRemoteAddressWithoutPort,
        "REQUESTED_SERVER_NAME": .requestedServerName,
        "DOWNSTREAM_PEER_URI_SAN": .downstreamPeerURISAN,
        "DOWNSTREAM_PEER_SUBJECT": .downstreamPeerSubject,
        "DOWNSTREAM_TLS_VERSION": .downstreamTLSVersion,
        "TRACE_ID": .traceID,
    ]

    func value(of entry: AccessLogEntry) -> AccessLogValue {
        switch self {
        case .startTime(let format): .startTime(entry.startTime, format)
        case .requestHeader(let choice): choice.requestValue(in: entry)
        case .responseHeader(let choice): choice.responseValue(in: entry)
        case .hostName(let name): .string(name)
        case .routeName: .string(entry.routeName)
        case .protocolName: .string(entry.protocolName)
        case .responseCode: .number(Int64(entry.responseCode))
        case .responseFlags: .flags(entry.responseFlags)
        case .responseCodeDetails: .string(entry.responseCodeDetails)
        case .connectionTerminationDetails: .string(entry.connectionTerminationDetails)
        case .bytesReceived: .number(Int64(entry.bytesReceived))
        case .bytesSent: .number(Int64(entry.bytesSent))
        case .duration: .milliseconds(entry.duration)
        case .responseDuration: .milliseconds(entry.responseDuration)
        case .upstreamHost: .string(entry.upstreamHost)
        case .upstreamCluster: .string(entry.upstreamCluster)
        case .upstreamLocalAddress: .string(entry.upstreamLocalAddress)
        case .upstreamTransportFailureReason: .string(entry.upstreamTransportFailureReason)
        case .upstreamRequestAttemptCount: .number(entry.upstreamRequestAttemptCount)
        case .downstreamLocalAddress: .string(entry.connection.localAddress)
        case .downstreamRemoteAddress: .string(entry.connection.remoteAddress)
        case .downstreamLocalAddressWithoutPort: Self.withoutPort(entry.connection.localAddress)
        case .downstreamRemoteAddressWithoutPort: Self.withoutPort(entry.connection.remoteAddress)
        case .requestedServerName: .string(entry.connection.requestedServerName)
        case .downstreamPeerURISAN: .string(entry.connection.peerURISAN)
        case .downstreamPeerSubject: .string(entry.connection.peerSubject)
        case .downstreamTLSVersion: .string(entry.connection.tlsVersion)
        case .traceID: .string(entry.traceID)
        }
    }

    /// The address of `ip:port` or `[ipv6]:port`, without brackets as Envoy writes it; an address
    /// without a port (a bare IPv6 address, a socket path) as it is.
    static func withoutPort(_ address: String?) -> AccessLogValue {
        guard let address, !address.isEmpty else { return .missing }
        let text = Substring(address)
        if text.utf8.first == UInt8(ascii: "["), let close = text.utf8.firstIndex(of: UInt8(ascii: "]")) {
            return .text(text[text.utf8.index(after: text.startIndex)..<close])
        }
        let colons = text.utf8.lazy.filter { $0 == UInt8(ascii: ":") }.count
        guard colons == 1, let colon = text.utf8.firstIndex(of: UInt8(ascii: ":")) else { return .text(text) }
        return .text(text[..<colon])
    }

    /// Whether the operator reads the entry's response header fields.
    var readsResponseHeaders: Bool {
        if case .responseHeader = self { return true }
        return false
    }
}

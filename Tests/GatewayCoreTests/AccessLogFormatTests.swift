import Foundation
import LambdaPayload
import Testing

@testable import GatewayCore

/// The access-log format compiler and renderer (docs/COMPATIBILITY.md, `AccessLogs`): Consul's default, text and
/// JSON formats, START_TIME patterns, Envoy's missing-value and typing rules, and lines a client
/// cannot split or forge.
@Suite("Access-log format")
struct AccessLogFormatTests {
    /// 2026-12-06T14:33:14.123456789Z
    static let startTime = WallClockTime(nanosecondsSinceEpoch: 1_796_567_594_123_456_789)

    /// Every field set, as after a request that timed out against Lambda and was retried.
    static var fullEntry: AccessLogEntry {
        var entry = AccessLogEntry(
            startTime: startTime,
            connection: AccessLogConnection(
                localAddress: "10.1.0.5:8443",
                remoteAddress: "10.2.0.9:53012",
                requestedServerName: "orders.default.dc1.internal.5f3a.consul",
                peerURISAN: "spiffe://5f3a.consul/ns/default/dc/dc1/svc/web",
                peerSubject: "CN=web",
                tlsVersion: "TLSv1.3"
            )
        )
        entry.duration = .milliseconds(57) + .microseconds(900)
        entry.responseDuration = .microseconds(41_500)
        entry.upstreamServiceTime = .milliseconds(38)
        entry.method = "POST"
        entry.path = "/orders?id=7"
        entry.protocolName = "HTTP/1.1"
        entry.requestHeaders = [
            HTTPField("Host", "orders.example"),
            HTTPField("User-Agent", "curl/8.5.0"),
            HTTPField("X-Forwarded-For", "10.0.0.9"),
            HTTPField("x-request-id", "f1e2d3c4"),
        ]
        entry.responseHeaders = [HTTPField("Content-Type", "application/json")]
        entry.responseCode = 504
        entry.responseFlags = [.upstreamRetryLimitExceeded, .upstreamRequestTimeout]
        entry.responseCodeDetails = "upstream_response_timeout"
        entry.connectionTerminationDetails = "idle_timeout"
        entry.bytesReceived = 17
        entry.bytesSent = 1234
        entry.upstreamHost = "lambda.us-east-1.amazonaws.com:443"
        entry.upstreamCluster = "orders"
        entry.upstreamLocalAddress = "10.1.2.3:50412"
        entry.upstreamTransportFailureReason = "connection timed out"
        entry.upstreamRequestAttemptCount = 3
        entry.routeName = "orders-route"
        entry.traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        return entry
    }

    static var emptyEntry: AccessLogEntry { AccessLogEntry(startTime: startTime, connection: AccessLogConnection()) }

    static func line(_ format: AccessLogFormat, _ entry: AccessLogEntry) -> String {
        var buffer: [UInt8] = []
        format.render(entry, into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    static func text(_ format: String, _ entry: AccessLogEntry = fullEntry) throws -> String {
        line(try AccessLogFormat(text: format, hostName: "gw-1"), entry)
    }

    static func json(_ format: String, _ entry: AccessLogEntry = fullEntry) throws -> String {
        line(try AccessLogFormat(json: format, hostName: "gw-1"), entry)
    }

    /// The line parsed back as one JSON object; the line must be one line.
    static func parsed(_ line: String) throws -> [String: Any] {
        #expect(line.hasSuffix("\n") && line.utf8.filter { $0 == 0x0A }.count == 1, "\(line.debugDescription)")
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any])
    }

    static func error(_ make: () throws -> AccessLogFormat) -> AccessLogFormatError? {
        do {
            _ = try make()
            return nil
        } catch {
            return error as? AccessLogFormatError
        }
    }

    // MARK: Consul's default

    @Test func consulDefaultWritesEveryFieldInConsulsOrderWithTypedNumbers() throws {
        let line = Self.line(.consulDefault, Self.fullEntry)
        let expected =
            #"{"start_time":"2026-12-06T14:33:14.123Z","route_name":"orders-route","method":"POST","#
            + #""path":"/orders?id=7","protocol":"HTTP/1.1","response_code":504,"response_flags":"UT,URX","#
            + #""response_code_details":"upstream_response_timeout","connection_termination_details":"idle_timeout","#
            + #""bytes_received":17,"bytes_sent":1234,"duration":57,"upstream_service_time":38,"#
            + #""x_forwarded_for":"10.0.0.9","user_agent":"curl/8.5.0","request_id":"f1e2d3c4","authority":"orders.example","#
            + #""upstream_host":"lambda.us-east-1.amazonaws.com:443","upstream_cluster":"orders","#
            + #""upstream_local_address":"10.1.2.3:50412","downstream_local_address":"10.1.0.5:8443","#
            + #""downstream_remote_address":"10.2.0.9:53012","requested_server_name":"orders.default.dc1.internal.5f3a.consul","#
            + #""upstream_transport_failure_reason":"connection timed out"}"# + "\n"
        #expect(line == expected)
        let object = try Self.parsed(line)
        #expect(object.count == 24)
        #expect(object["response_code"] as? Int == 504 && object["duration"] as? Int == 57)
    }

    @Test func consulDefaultWritesNullForWhatIsNotKnown() throws {
        let line = Self.line(.consulDefault, Self.emptyEntry)
        let expected =
            #"{"start_time":"2026-12-06T14:33:14.123Z","route_name":null,"method":null,"path":null,"#
            + #""protocol":null,"response_code":0,"response_flags":"-","response_code_details":null,"#
            + #""connection_termination_details":null,"bytes_received":0,"bytes_sent":0,"duration":null,"#
            + #""upstream_service_time":null,"x_forwarded_for":null,"user_agent":null,"request_id":null,"authority":null,"#
            + #""upstream_host":null,"upstream_cluster":null,"upstream_local_address":null,"downstream_local_address":null,"#
            + #""downstream_remote_address":null,"requested_server_name":null,"upstream_transport_failure_reason":null}"# + "\n"
        #expect(line == expected)
        #expect(try Self.parsed(line)["path"] is NSNull)
    }

    @Test func consulDefaultPrefersTheOriginalPathAndAResponsesServiceTimeHeader() throws {
        var entry = Self.fullEntry
        entry.requestHeaders.append(HTTPField("X-Envoy-Original-Path", "/before-rewrite"))
        entry.responseHeaders.append(HTTPField("x-envoy-upstream-service-time", "12"))
        let object = try Self.parsed(Self.line(.consulDefault, entry))
        #expect(object["path"] as? String == "/before-rewrite")
        #expect(object["upstream_service_time"] as? Int == 12)
        // A header that is not a number stays a string.
        entry.responseHeaders[1].value = "12ms"
        #expect(try Self.json(#"{"t":"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"}"#, entry) == #"{"t":"12ms"}"# + "\n")
    }

    // MARK: Operators

    static let operators: [(String, String)] = [
        ("%START_TIME%", "2026-12-06T14:33:14.123Z"),
        ("%ROUTE_NAME%", "orders-route"),
        ("%REQ(:METHOD)%", "POST"),
        ("%REQ(:PATH)%", "/orders?id=7"),
        ("%REQ(:AUTHORITY)%", "orders.example"),
        ("%REQ(:SCHEME)%", "https"),
        ("%REQ(USER-AGENT)%", "curl/8.5.0"),
        ("%RESP(CONTENT-TYPE)%", "application/json"),
        ("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "38"),
        ("%PROTOCOL%", "HTTP/1.1"),
        ("%RESPONSE_CODE%", "504"),
        ("%RESPONSE_FLAGS%", "UT,URX"),
        ("%RESPONSE_CODE_DETAILS%", "upstream_response_timeout"),
        ("%CONNECTION_TERMINATION_DETAILS%", "idle_timeout"),
        ("%BYTES_RECEIVED%", "17"),
        ("%BYTES_SENT%", "1234"),
        ("%DURATION%", "57"),
        ("%RESPONSE_DURATION%", "41"),
        ("%UPSTREAM_HOST%", "lambda.us-east-1.amazonaws.com:443"),
        ("%UPSTREAM_CLUSTER%", "orders"),
        ("%UPSTREAM_LOCAL_ADDRESS%", "10.1.2.3:50412"),
        ("%DOWNSTREAM_LOCAL_ADDRESS%", "10.1.0.5:8443"),
        ("%DOWNSTREAM_REMOTE_ADDRESS%", "10.2.0.9:53012"),
        ("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "10.1.0.5"),
        ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.2.0.9"),
        ("%REQUESTED_SERVER_NAME%", "orders.default.dc1.internal.5f3a.consul"),
        ("%UPSTREAM_TRANSPORT_FAILURE_REASON%", "connection timed out"),
        ("%DOWNSTREAM_PEER_URI_SAN%", "spiffe://5f3a.consul/ns/default/dc/dc1/svc/web"),
        ("%DOWNSTREAM_PEER_SUBJECT%", "CN=web"),
        ("%DOWNSTREAM_TLS_VERSION%", "TLSv1.3"),
        ("%UPSTREAM_REQUEST_ATTEMPT_COUNT%", "3"),
        ("%HOSTNAME%", "gw-1"),
        ("%TRACE_ID%", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("100%% of %REQ(:METHOD)%s", "100% of POSTs"),
    ]

    @Test(arguments: operators)
    func eachOperatorWritesItsField(format: String, expected: String) throws {
        #expect(try Self.text(format) == expected + "\n")
    }

    @Test func aTextLineWritesADashForEachUnknownValueAndZeroForCounts() throws {
        let format =
            "%ROUTE_NAME% %REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(USER-AGENT)% %RESP(X)% "
            + "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %PROTOCOL% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "
            + "%CONNECTION_TERMINATION_DETAILS% %DURATION% %RESPONSE_DURATION% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% "
            + "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
            + "%REQUESTED_SERVER_NAME% %UPSTREAM_TRANSPORT_FAILURE_REASON% %DOWNSTREAM_PEER_URI_SAN% "
            + "%DOWNSTREAM_PEER_SUBJECT% %DOWNSTREAM_TLS_VERSION% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %TRACE_ID% "
            + "| %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %REQ(:SCHEME)%"
        let dashes = Array(repeating: "-", count: 25).joined(separator: " ")
        #expect(try Self.text(format, Self.emptyEntry) == dashes + " | 0 0 0 http\n")
    }

    @Test func addressesLoseTheirPortAndIPv6ItsBrackets() throws {
        var entry = Self.emptyEntry
        entry.connection.remoteAddress = "[fd00::9]:53012"
        entry.connection.localAddress = "fd00::5"
        #expect(try Self.text("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", entry) == "fd00::9 fd00::5\n")
    }

    @Test func responseFlagsFollowEnvoysOrder() throws {
        let all: ResponseFlags = [
            .downstreamConnectionTermination, .upstreamRetryLimitExceeded, .unauthorizedExternalService, .rateLimited,
            .noRouteFound, .upstreamConnectionTermination, .upstreamConnectionFailure, .upstreamRequestTimeout,
        ]
        #expect(all.envoyString == "UT,UF,UC,NR,RL,UAEX,DC,URX")
        var entry = Self.emptyEntry
        entry.responseFlags = all
        #expect(try Self.text("%RESPONSE_FLAGS%", entry) == "UT,UF,UC,NR,RL,UAEX,DC,URX\n")
        #expect(ResponseFlags().envoyString == "-")
    }

    @Test func durationsAreWholeMillisecondsCutNotRounded() throws {
        var entry = Self.emptyEntry
        entry.duration = .microseconds(999)
        entry.responseDuration = .seconds(2) + .nanoseconds(999_999_999)
        #expect(try Self.text("%DURATION% %RESPONSE_DURATION%", entry) == "0 2999\n")
    }

    // MARK: START_TIME

    static let timePatterns: [(Int64, String, String)] = [
        (1_796_567_594_123_456_789, "%START_TIME%", "2026-12-06T14:33:14.123Z"),
        (1_796_567_594_123_456_789, "%START_TIME()%", "2026-12-06T14:33:14.123Z"),
        (1_796_567_594_123_456_789, "%START_TIME(%s)%", "1796567594"),
        (1_796_567_594_123_456_789, "%START_TIME(%s.%3f)%", "1796567594.123"),
        (1_796_567_594_123_456_789, "%START_TIME(%f|%1f|%6f|%9f)%", "123456789|1|123456|123456789"),
        (1_796_567_594_123_456_789, "%START_TIME(%Y/%m/%d %H:%M:%S %z %Z)%", "2026/12/06 14:33:14 +0000 UTC"),
        (1_796_567_594_123_456_789, "%START_TIME(%a %b %e %T %y %j %F %%)%", "Sun Dec  6 14:33:14 26 340 2026-12-06 %"),
        (1_709_251_199_999_000_000, "%START_TIME%", "2024-02-29T23:59:59.999Z"),
        (1_709_251_199_999_000_000, "%START_TIME(%a %e %j)%", "Thu 29 060"),
        (1_861_833_601_000_000_000, "%START_TIME(%a %F %j)%", "Sun 2028-12-31 366"),
        (0, "%START_TIME%", "1970-01-01T00:00:00.000Z"),
        (-1_000_000, "%START_TIME%", "1969-12-31T23:59:59.999Z"),
    ]

    @Test(arguments: timePatterns)
    func startTimeFollowsItsPattern(nanoseconds: Int64, format: String, expected: String) throws {
        let entry = AccessLogEntry(startTime: WallClockTime(nanosecondsSinceEpoch: nanoseconds), connection: AccessLogConnection())
        #expect(try Self.text(format, entry) == expected + "\n")
    }

    @Test func theCalendarAgreesWithFoundationsOverThreeCenturies() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let format = try AccessLogFormat(text: "%START_TIME(%Y %m %d %H %M %S %j %a)%")
        var random = SystemRandomNumberGenerator()
        var mismatches: [String] = []
        for _ in 0..<2000 where mismatches.count < 3 {
            let seconds = Int64.random(in: 0...9_200_000_000, using: &random)  // 1970 to 2261, as far as nanoseconds in Int64 go
            let date = Date(timeIntervalSince1970: TimeInterval(seconds))
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
            let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date)!
            let weekday = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][parts.weekday! - 1]
            func padded(_ value: Int, _ width: Int) -> String {
                String(repeating: "0", count: max(0, width - String(value).count)) + String(value)
            }
            let numbers = [(parts.year!, 4), (parts.month!, 2), (parts.day!, 2), (parts.hour!, 2), (parts.minute!, 2), (parts.second!, 2), (dayOfYear, 3)]
            let expected = numbers.map { padded($0.0, $0.1) }.joined(separator: " ") + " " + weekday + "\n"
            let entry = AccessLogEntry(startTime: WallClockTime(nanosecondsSinceEpoch: seconds * 1_000_000_000), connection: AccessLogConnection())
            let line = Self.line(format, entry)
            if line != expected { mismatches.append("\(seconds)s: \(line.debugDescription), Foundation says \(expected.debugDescription)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test func anUnsupportedStrftimeLetterIsNamed() throws {
        let error = try #require(Self.error { try AccessLogFormat(text: "%START_TIME(%Y %Q)%") })
        #expect(error.code == .unsupportedTimeSpecifier)
        #expect(error.description.contains("%Q"), "\(error)")
    }

    // MARK: Headers

    @Test func aHeaderOperatorFallsBackToItsAlternative() throws {
        var entry = Self.emptyEntry
        entry.requestHeaders = [HTTPField("x-b", "from-b")]
        #expect(try Self.text("%REQ(X-A?X-B)%", entry) == "from-b\n")
        entry.requestHeaders.append(HTTPField("x-a", "from-a"))
        #expect(try Self.text("%REQ(X-A?X-B)%", entry) == "from-a\n")
        entry.responseHeaders = [HTTPField("y-b", "rb")]
        #expect(try Self.text("%RESP(Y-A?Y-B)% %RESP(Y-A?Y-C)%", entry) == "rb -\n")
        entry.path = "/p"
        #expect(try Self.text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", entry) == "/p\n")
    }

    @Test func headerNamesMatchWithoutRegardToCase() throws {
        var entry = Self.emptyEntry
        entry.requestHeaders = [HTTPField("uSeR-aGeNt", "agent"), HTTPField("HOST", "h.example")]
        #expect(try Self.text("%REQ(USER-AGENT)% %REQ(user-agent)% %REQ(:authority)% %REQ(:Authority)%", entry) == "agent agent h.example h.example\n")
        entry.requestHeaders.append(HTTPField(":authority", "a.example"))
        #expect(try Self.text("%REQ(:AUTHORITY)%", entry) == "a.example\n")
    }

    @Test func aMaximumLengthCutsTheValueButNeverACharacter() throws {
        #expect(try Self.text("%REQ(USER-AGENT):4% %REQ(:PATH):0%|%REQ(:METHOD):99%") == "curl |POST\n")
        var entry = Self.emptyEntry
        entry.requestHeaders = [HTTPField("x-name", "aéb")]  // a, C3 A9, b
        #expect(try Self.text("%REQ(X-NAME):2%", entry) == "a\n")
        #expect(try Self.text("%REQ(X-NAME):3%", entry) == #"a\xc3\xa9"# + "\n")
        #expect(try Self.json(#"{"n":"%REQ(X-NAME):2%","m":"<%REQ(X-NAME):3%>"}"#, entry) == #"{"n":"a","m":"<aé>"}"# + "\n")
    }

    // MARK: Errors

    @Test func anUnknownOperatorIsNamed() throws {
        let error = try #require(Self.error { try AccessLogFormat(text: "%PROTOCOL% %FOO% %DURATION%") })
        #expect(error.code == .unknownOperator)
        #expect(error.description == "unknown access-log operator %FOO%")
        #expect(Self.error { try AccessLogFormat(text: "%req(user-agent)%") }?.description == "unknown access-log operator %req(user-agent)%")
    }

    @Test(arguments: ["%REQ(", "%REQ(USER-AGENT)", "a %DURATION", "100%", "%REQ(A):12"])
    func anUnterminatedOperatorIsRefused(format: String) throws {
        let error = try #require(Self.error { try AccessLogFormat(text: format) })
        #expect(error.code == .unterminatedOperator, "\(error)")
        #expect(error.description.contains("unterminated"), "\(error)")
    }

    @Test func unterminatedAndMalformedOperatorsAreShownAsWritten() {
        #expect(Self.error { try AccessLogFormat(text: "x %REQ(") }?.description == #"unterminated access-log operator %REQ( (no closing ")")"#)
        #expect(Self.error { try AccessLogFormat(text: "%REQ(A)x%") }?.description == #"access-log operator %REQ(A) is followed by "x" where its closing % should be"#)
    }

    @Test func malformedOperatorsAreRefused() throws {
        #expect(Self.error { try AccessLogFormat(text: "50 % off") }?.code == .malformedOperator)
        #expect(Self.error { try AccessLogFormat(text: "%REQ(A)x%") }?.code == .malformedOperator)
        #expect(Self.error { try AccessLogFormat(text: "%REQ(A?B?C)%") }?.code == .malformedOperator)
        #expect(Self.error { try AccessLogFormat(text: "%PROTOCOL(x)%") }?.code == .unexpectedArgument)
        #expect(Self.error { try AccessLogFormat(text: "%REQ(A):%") }?.code == .invalidMaxLength)
        #expect(Self.error { try AccessLogFormat(text: "%REQ(A):1234567890%") }?.code == .invalidMaxLength)
    }

    @Test(arguments: ["%REQ()%", "%REQ%", "%RESP%", "%REQ(A?)%", "%RESP(?B)%"])
    func aHeaderOperatorNeedsAHeaderName(format: String) throws {
        let error = try #require(Self.error { try AccessLogFormat(text: format) })
        #expect(error.code == .missingHeaderName, "\(error)")
    }

    @Test func jsonFormatErrorsSayWhere() throws {
        #expect(Self.error { try AccessLogFormat(json: #"{"a": "%X%"#) }?.code == .invalidJSON)
        #expect(Self.error { try AccessLogFormat(json: #"["%PROTOCOL%"]"#) }?.code == .jsonNotAnObject)
        let array = try #require(Self.error { try AccessLogFormat(json: #"{"a": ["%PROTOCOL%"]}"#) })
        #expect(array.code == .unsupportedJSONValue && array.jsonKey == "a")
        let nested = try #require(Self.error { try AccessLogFormat(json: #"{"a": {"b": "x %FOO% y"}}"#) })
        #expect(nested.code == .unknownOperator)
        #expect(nested.description == #"JSONFormat member "a.b": unknown access-log operator %FOO%"#)
    }

    // MARK: JSON formats

    @Test func aJSONFormatNestsObjectsAndPassesOtherLiteralsThrough() throws {
        let format = #"{"a": {"code": "%RESPONSE_CODE%", "said": "got %RESPONSE_CODE% in %DURATION% ms"}, "n": 5.5e1, "t": true, "z": null, "s": "lit \"q\" 100%%", "empty": ""}"#
        let line = try Self.json(format)
        #expect(line == #"{"a":{"code":504,"said":"got 504 in 57 ms"},"n":5.5e1,"t":true,"z":null,"s":"lit \"q\" 100%","empty":""}"# + "\n")
        let object = try Self.parsed(line)
        #expect((object["a"] as? [String: Any])?["code"] as? Int == 504)
    }

    @Test func aJSONStringMixingOperatorsWritesADashForAMissingOne() throws {
        #expect(try Self.json(#"{"m": "%REQ(:METHOD)% %DURATION% %RESPONSE_CODE%"}"#, Self.emptyEntry) == #"{"m":"- - 0"}"# + "\n")
        #expect(try Self.json(#"{"m": "%REQ(:METHOD)%", "d": "%DURATION%", "a": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"}"#, Self.emptyEntry) == #"{"m":null,"d":null,"a":null}"# + "\n")
    }

    @Test func typedNumbersInJSONAreOnlyTheNumericOperators() throws {
        let line = try Self.json(#"{"c":"%RESPONSE_CODE%","r":"%RESPONSE_DURATION%","b":"%BYTES_RECEIVED%","a":"%UPSTREAM_REQUEST_ATTEMPT_COUNT%","p":"%PROTOCOL%","s":"%START_TIME(%s)%"}"#)
        #expect(line == #"{"c":504,"r":41,"b":17,"a":3,"p":"HTTP/1.1","s":"1796567594"}"# + "\n")
    }

    // MARK: Lines a client cannot forge

    static let hostileValue = "x\ny\rz\u{1b}[2J\"q\\\u{9b}31m\0end"

    @Test func aTextLineEscapesNetworkBytes() throws {
        var entry = Self.fullEntry
        entry.requestHeaders = [HTTPField("user-agent", Self.hostileValue)]
        entry.path = "/é"
        let line = try Self.text("%REQ(USER-AGENT)% %REQ(:PATH)%", entry)
        // `"` too: a quoted field (Envoy's style) cannot be closed early to forge the next one.
        #expect(line == #"x\x0ay\x0dz\x1b[2J\x22q\\\xc2\x9b31m\x00end /\xc3\xa9"# + "\n")
        #expect(line.utf8.dropLast().allSatisfy { $0 >= 0x20 && $0 < 0x7F })
    }

    @Test func aJSONLineEscapesNetworkBytesAndParsesBackToThem() throws {
        var entry = Self.fullEntry
        entry.requestHeaders = [HTTPField("user-agent", Self.hostileValue)]
        entry.connection.requestedServerName = "sni\n{\"forged\":1}"
        let line = Self.line(.consulDefault, entry)
        #expect(line.contains(#""user_agent":"x\u000ay\u000dz\u001b[2J\"q\\\u009b31m\u0000end""#), "\(line)")
        #expect(!line.utf8.dropLast().contains { $0 < 0x20 })
        let object = try Self.parsed(line)
        #expect(object["user_agent"] as? String == Self.hostileValue)
        #expect(object["requested_server_name"] as? String == "sni\n{\"forged\":1}")
        #expect(object["forged"] == nil)
    }

    @Test func invalidUTF8BecomesReplacementCharactersInJSON() throws {
        // Bytes straight to the escaper: a lone continuation byte, a cut two-byte character.
        var escaped: [UInt8] = Array(#"{"p":""#.utf8)
        AccessLogRenderer.appendJSONEscaped([0x2F, 0xFF, 0x61, 0xC3], to: &escaped)
        escaped.append(contentsOf: Array(#""}"#.utf8) + [0x0A])
        #expect(try Self.parsed(String(decoding: escaped, as: UTF8.self))["p"] as? String == "/\u{FFFD}a\u{FFFD}")
        #expect(String(validating: escaped, as: UTF8.self) != nil)
        // And through a whole line, from a path decoded with repair.
        var entry = Self.fullEntry
        entry.path = String(decoding: [0x2F, 0xFF, 0xFE], as: UTF8.self)
        #expect(try Self.parsed(Self.line(.consulDefault, entry))["path"] as? String == "/\u{FFFD}\u{FFFD}")
    }

    @Test func escapingInPlaceLeavesWhatCameBeforeTheValue() {
        var buffer = Array("kept \"".utf8)
        let start = buffer.count
        buffer.append(contentsOf: Array("a\"b\u{7f}".utf8))
        AccessLogRenderer.escape(from: start, in: &buffer, .json)
        #expect(String(decoding: buffer, as: UTF8.self) == #"kept "a\"b\u007f"#)
        buffer = Array("\\ ".utf8)
        buffer.append(contentsOf: [0x5C, 0x0A])
        AccessLogRenderer.escape(from: 2, in: &buffer, .text)
        #expect(String(decoding: buffer, as: UTF8.self) == #"\ \\\x0a"#)
    }

    // MARK: Line ends

    @Test(arguments: [("a %PROTOCOL%", "a HTTP/1.1\n"), ("a %PROTOCOL%\n", "a HTTP/1.1\n"), ("a %PROTOCOL%\n\n", "a HTTP/1.1\n"), ("", "\n")])
    func aTextLineEndsWithExactlyOneNewline(format: String, expected: String) throws {
        #expect(try Self.text(format) == expected)
    }

    @Test func aPercentIsWrittenAsTwo() throws {
        #expect(try Self.text("%%%PROTOCOL%%% %%") == "%HTTP/1.1% %\n")
        #expect(try Self.json(#"{"p":"%%%RESPONSE_CODE%"}"#) == #"{"p":"%504"}"# + "\n")
    }

    // MARK: What the request path may skip

    @Test func theFormatSaysWhichHeadersItReads() throws {
        let plain = try AccessLogFormat(text: "%REQ(:METHOD)% %REQ(:PATH)% %REQ(:SCHEME)% %RESPONSE_CODE%")
        #expect(!plain.usesRequestHeaders && !plain.usesResponseHeaders)
        let request = try AccessLogFormat(text: "%REQ(:METHOD)% %REQ(USER-AGENT)%")
        #expect(request.usesRequestHeaders && !request.usesResponseHeaders)
        #expect(try AccessLogFormat(text: "%REQ(:AUTHORITY)%").usesRequestHeaders)
        #expect(try AccessLogFormat(text: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%").usesRequestHeaders)
        let response = try AccessLogFormat(json: #"{"r":{"t":"%RESP(CONTENT-TYPE)%"}}"#)
        #expect(!response.usesRequestHeaders && response.usesResponseHeaders)
        #expect(AccessLogFormat.consulDefault.usesRequestHeaders && AccessLogFormat.consulDefault.usesResponseHeaders)
    }

    @Test func formatsAreEqualWhenTheyCompileAlike() throws {
        #expect(try AccessLogFormat(text: "%PROTOCOL%\n") == AccessLogFormat(text: "%PROTOCOL%"))
        #expect(try AccessLogFormat(text: "%PROTOCOL%") != AccessLogFormat(text: "%PROTOCOL% "))
        #expect(try AccessLogFormat(json: AccessLogFormat.consulDefaultJSON) == AccessLogFormat.consulDefault)
    }

    @Test func theHostNameIsTheMachinesUnlessInjected() throws {
        #expect(try Self.text("%HOSTNAME%") == "gw-1\n")
        let machine = AccessLogFormatParser.machineHostName()
        #expect(!machine.isEmpty)
        #expect(Self.line(try AccessLogFormat(text: "%HOSTNAME%"), Self.emptyEntry) == machine + "\n")
    }
}

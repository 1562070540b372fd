// libFuzzer target: an access-log format as Consul's AccessLogs would carry it (first byte: JSON
// or text), compiled, then rendered for an entry whose every network value is hostile. A format
// that compiles must render without crashing; the hostile values must never add a line (the
// format's own text may hold newlines: they are the operator's), and a JSON format's line must
// stay one valid JSON object.
import Foundation
import FuzzSupport
import GatewayCore
import LambdaPayload

/// Values a peer controls, each trying to end the line, forge a field or escape the string.
let hostile = "a\n{\"forged\":1}\r\u{1b}[2J\\\"\u{0}\u{7f}\u{85}\u{2028}é"

let entries: (plain: AccessLogEntry, hostile: AccessLogEntry) = {
    func entry(_ value: String) -> AccessLogEntry {
        var entry = AccessLogEntry(
            startTime: WallClockTime(nanosecondsSinceEpoch: 1_765_031_594_123_456_789),
            connection: AccessLogConnection(
                localAddress: "127.0.0.1:8443", remoteAddress: "[::1]:50000", requestedServerName: value, peerURISAN: value, peerSubject: value, tlsVersion: "TLSv1.3"
            )
        )
        entry.duration = .milliseconds(12)
        entry.responseDuration = .milliseconds(10)
        entry.upstreamServiceTime = .milliseconds(9)
        entry.method = value
        entry.path = value
        entry.protocolName = "HTTP/1.1"
        entry.requestHeaders = [HTTPField("x-a", value), HTTPField("user-agent", value), HTTPField("host", value)]
        entry.responseHeaders = [HTTPField("x-b", value)]
        entry.responseCode = 200
        entry.responseFlags = [.upstreamRequestTimeout, .downstreamConnectionTermination]
        entry.responseCodeDetails = value
        entry.bytesReceived = 7
        entry.bytesSent = 5
        entry.upstreamHost = value
        entry.upstreamCluster = value
        return entry
    }
    return (entry("plain"), entry(hostile))
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let json = data[0] & 1 == 1
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    guard let format = try? (json ? AccessLogFormat(json: text, hostName: hostile) : AccessLogFormat(text: text, hostName: "host")) else { return 0 }
    var plain: [UInt8] = []
    format.render(entries.plain, into: &plain)
    var line: [UInt8] = []
    format.render(entries.hostile, into: &line)
    precondition(line.last == UInt8(ascii: "\n"), "a line does not end with a newline")
    let newlines = { (bytes: [UInt8]) in bytes.filter { $0 == UInt8(ascii: "\n") }.count }
    precondition(newlines(line) == newlines(plain), "a network value added a line: \(String(decoding: line, as: UTF8.self))")
    if json {
        let object = try? JSONSerialization.jsonObject(with: Data(line))
        precondition(object is [String: Any], "a JSON format's line is not one JSON object: \(String(decoding: line, as: UTF8.self))")
    }
    return 0
}

@_cdecl("FuzzAccessLogFormat_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}

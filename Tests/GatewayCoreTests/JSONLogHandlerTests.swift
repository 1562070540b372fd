import Foundation
import Logging
import Testing

@testable import GatewayCore

/// `--log-format json`: one JSON object per line, metadata as fields, nothing a value holds can
/// break the line.
@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test func aLineIsOneJSONObjectWithMetadataAsFields() throws {
        let line = JSONLogHandler.line(
            time: Date(timeIntervalSince1970: 1_765_031_594.123), level: .warning, message: "consul watch failed\nforged: line", label: "lambda-gateway",
            metadata: ["endpoint": "/v1/config", "message": "shadowed", "count": .stringConvertible(3), "list": ["a", "\u{1b}[2J"]]
        )
        #expect(line.hasSuffix("}\n") && line.dropLast().contains("\n") == false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2025-12-06T14:33:14.123Z")
        #expect(object["level"] as? String == "warning")
        #expect(object["message"] as? String == "consul watch failed\nforged: line")
        #expect(object["label"] as? String == "lambda-gateway")
        #expect(object["endpoint"] as? String == "/v1/config")
        #expect(object["meta_message"] as? String == "shadowed")
        #expect(object["count"] as? String == "3")
        #expect(object["list"] as? [String] == ["a", "\u{1b}[2J"])
    }
}

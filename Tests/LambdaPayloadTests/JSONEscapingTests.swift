import Foundation
@testable import LambdaPayload
import NIOCore
import Testing

@Suite("JSON string escaping")
struct JSONEscapingTests {
    /// Every string, escaped by the writer, reads back as itself with Foundation's JSON parser:
    /// runs copied whole, every kind of escape, escapes at the start and the end, empty strings.
    @Test func escapedStringsReadBackUnchanged() throws {
        let pieces = ["", "a", "plain text ", "\"", "\\", "\n", "\r", "\t", "\u{08}", "\u{0C}", "\u{01}", "\u{1F}", "é", "😀", "/", "{\"k\":\"v\"}"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let text = (0..<Int.random(in: 0...12, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            var buffer = ByteBuffer()
            Array(text.utf8).withUnsafeBytes { JSONWriter.writeEscaped($0, to: &buffer) }
            let json = buffer.readString(length: buffer.readableBytes)!
            let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed) as? String
            #expect(decoded == text, "\(json)")
        }
    }

    /// Long strings with one escape at every offset: the runs before and after it copied whole.
    @Test func longStringsWithEscapesAtEveryOffset() throws {
        let plain = String(repeating: "abcdefghijklmnop", count: 8)
        for offset in 0..<plain.utf8.count {
            for escape in ["\"", "\n", "\u{01}", "é"] {
                var text = plain
                text.insert(contentsOf: escape, at: text.index(text.startIndex, offsetBy: offset))
                var buffer = ByteBuffer()
                Array(text.utf8).withUnsafeBytes { JSONWriter.writeEscaped($0, to: &buffer) }
                let json = buffer.readString(length: buffer.readableBytes)!
                let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed) as? String
                #expect(decoded == text, "\(json)")
            }
        }
    }
}

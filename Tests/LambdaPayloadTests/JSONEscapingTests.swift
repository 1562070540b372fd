import Foundation
import NIOCore
import TestSupport
import Testing

@testable import LambdaPayload

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

    /// The one-pass writer gives the measured writer's bytes, with its comma and colon: texts
    /// with escapes under its allowance, exactly at it, and beyond it (where it falls back), at
    /// every length around a word.
    @Test func onePassWritesWhatTheMeasuredWriterWrites() {
        var random = SplitMix(seed: 0x0E5C_A9E5)
        let alphabet: [UInt8] = Array("ab\"\\\n\u{01}\u{1F} é".utf8)
        for _ in 0..<3000 {
            let length = random.next(below: 300)
            // From clean text to nothing but escapes.
            let escapes = random.next(below: 5)
            let bytes = (0..<length).map { _ in random.next(below: 4) < escapes ? alphabet[random.next(below: alphabet.count)] : UInt8(ascii: "x") }
            let comma = random.next(below: 2) == 0
            let colon = random.next(below: 2) == 0
            var onePass = ByteBuffer(string: "[")
            var measured = ByteBuffer(string: "[")
            let tookOnePass = bytes.withUnsafeBytes {
                JSONWriter.writeEscapedMeasured($0, to: &measured, comma: comma, colon: colon)
                return JSONWriter.writeEscaped($0, to: &onePass, comma: comma, colon: colon)
            }
            #expect(onePass == measured, "\(bytes)")
            // Escapes within the allowance always take the one pass (more may too, when the
            // buffer's room happens to be larger than asked for).
            let added = bytes.reduce(0) { $0 + Int(JSONWriter.escapeExtra[Int($1)]) }
            if added <= JSONWriter.escapeAllowance { #expect(tookOnePass, "\(added) bytes of escapes") }
        }
        // Exactly the allowance of two-byte escapes, and one more.
        for quotes in [JSONWriter.escapeAllowance, JSONWriter.escapeAllowance + 1] {
            var buffer = ByteBuffer()
            let tookOnePass = Array(repeating: UInt8(ascii: "\""), count: quotes).withUnsafeBytes { JSONWriter.writeEscaped($0, to: &buffer) }
            #expect(buffer.readableBytes == 2 * quotes + 2)
            if quotes <= JSONWriter.escapeAllowance { #expect(tookOnePass) }
        }
        // Far more escapes than any room the buffer rounds up to: measured first.
        var dense = ByteBuffer()
        let tookOnePass = [UInt8](repeating: 0x01, count: 300).withUnsafeBytes { JSONWriter.writeEscaped($0, to: &dense) }
        #expect(!tookOnePass && dense.readableBytes == 6 * 300 + 2)
    }

    /// The eight-byte test agrees with the byte table for every byte value in every lane, next to
    /// clean bytes, high bytes and other matches (a borrow between lanes must not hide a match).
    @Test(arguments: [UInt8(ascii: "a"), 0xFF, 0x80, 0x21, 0x23, 0x5B, 0x5D, 0x1F, 0x20])
    func wordTestAgreesWithTheTable(background: UInt8) {
        for value in 0...255 {
            for lane in 0..<8 {
                var bytes = [UInt8](repeating: background, count: 8)
                bytes[lane] = UInt8(value)
                let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                let expected = bytes.contains { JSONWriter.escapeExtra[Int($0)] > 0 }
                #expect(JSONWriter.hasByteToEscape(word) == expected, "byte \(value) in lane \(lane) among \(background)")
            }
        }
    }

    /// A non-ASCII byte at any offset of a long ASCII body is found: valid UTF-8 stays text,
    /// a stray continuation byte does not.
    @Test func utf8CheckFindsNonASCIIAtEveryOffset() {
        let plain = Array(String(repeating: "abcdefgh", count: 5).utf8)
        for offset in 0...plain.count {
            var valid = plain
            valid.insert(contentsOf: Array("é".utf8), at: offset)
            var invalid = plain
            invalid.insert(0x80, at: offset)
            #expect(valid.withUnsafeBytes { BodyEncoding.isValidUTF8($0) }, "é at \(offset)")
            #expect(!invalid.withUnsafeBytes { BodyEncoding.isValidUTF8($0) }, "0x80 at \(offset)")
        }
    }
}

@Suite("Textual media types (docs/DECISIONS.md D6)")
struct TextualMediaTypeTests {
    /// The media type before any parameter, blanks trimmed, compared without regard to case.
    @Test(arguments: [
        ("application/json", true), ("Application/JSON; charset=utf-8", true), (" text/plain ", true),
        ("\ttext/html\t; q=1", true), ("TEXT/CSV", true), ("text/", true), ("application/javascript", true),
        ("application/xml", true), ("application/x-www-form-urlencoded;x", true), ("application/vnd.api+json", true),
        ("application/problem+XML", true), ("+json", false), ("image/png", false), ("application/jsonx", false),
        ("application/json-seq", false), ("", false), (";text/plain", false), ("application/octet-stream", false),
        ("tex/plain", false), ("application/xm", false), ("é/x+json", true),
    ])
    func mediaTypesAreTextualOrNot(mediaType: String, textual: Bool) {
        #expect(BodyEncoding.isTextual(mediaType: mediaType) == textual)
    }
}

@Suite("Header names in byte order")
struct HeaderNameOrderTests {
    /// The payload's header names sort by their bytes: for names (ASCII tokens) the order
    /// `String`'s comparison gives, prefixes first, equal names equal.
    @Test func byteOrderIsStringOrderForNames() {
        let names = ["", "a", "a-b", "ab", "accept", "accept-encoding", "content-length", "content-type", "host", "x-forwarded-client-cert", "x-forwarded-proto", "x", "~", "Z", "0"]
        for lhs in names {
            for rhs in names {
                let order = PayloadHeaders.compareBytes(lhs, rhs)
                #expect((order < 0) == (lhs < rhs) && (order == 0) == (lhs == rhs), "\(lhs) \(rhs)")
            }
        }
    }

    /// Names compared with the gateway's own byte for byte, and lower-cased only where a capital
    /// is, as `String` would (a text that is not ASCII keeps its other bytes).
    @Test func namesCompareAndLowerCaseByTheirBytes() {
        #expect("cookie".equalsBytes("cookie") && !"Cookie".equalsBytes("cookie") && !"cookies".equalsBytes("cookie") && !"".equalsBytes("te"))
        #expect("".equalsBytes("") && !"cooki\u{E9}".equalsBytes("cookie"))
        for text in ["", "host", "Host", "X-Forwarded-Client-Cert", "ZZ", "@[`{", "Caf\u{C9}-Name", String(repeating: "aB", count: 40)] {
            #expect(text.asciiLowercased == String(decoding: text.utf8.map { (65...90).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self), "\(text)")
        }
    }

    /// The payload's buffer is sized from `estimatedBytes`: at least what the `headers` member
    /// takes when no value needs escaping (escaped beforehand or plain, led or not, repeated or
    /// not, with the authority as `host`), so that a usual payload never grows and is copied.
    @Test func theHeadersEstimateCoversTheMemberWritten() {
        let element = PreEscapedString(#"By=spiffe://td/ns/default/dc/dc1/svc/orders;Cert="-----BEGIN%20CERT";URI=spiffe://td/ns/default/dc/dc1/svc/web"#)
        let sets: [[HTTPField]] = [
            [],
            [HTTPField("Content-Type", "application/json"), HTTPField("x-forwarded-client-cert", element), HTTPField("accept", "*/*")],
            [HTTPField("x-a", "1"), HTTPField("X-A", "2"), HTTPField("cookie", "a=1"), HTTPField("cookie", "b=2"), HTTPField("connection", "keep-alive")],
            [HTTPField("x-forwarded-client-cert", element), HTTPField("x-forwarded-client-cert", "By=earlier"), HTTPField(":authority", "orders")],
            (0..<40).map { HTTPField("x-field-\($0)", String(repeating: "v", count: $0 * 7)) },
        ]
        for fields in sets {
            for (includeHost, authority) in [(false, nil), (true, "orders.example:8443")] {
                let headers = PayloadHeaders(fields, includeHost: includeHost, includeCookie: true, authority: authority)
                var writer = JSONWriter()
                writer.beginObject()
                headers.writeMember(to: &writer, atOpening: true)
                headers.writeMember(to: &writer, atOpening: false)
                #expect(headers.estimatedBytes >= writer.bytes.count, "\(fields.map(\.name)) \(includeHost)")
            }
        }
    }
}

@Suite("Hop-by-hop names")
struct HopByHopTests {
    /// RFC 9110's connection-specific fields, and `proxy-connection`; nothing that merely looks like one.
    @Test func theHopByHopNamesAndNoOthers() {
        for name in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"] {
            #expect(HopByHop.contains(name), "\(name)")
            #expect(ResponseHeaders.acceptedName(name) == nil, "\(name)")
        }
        // Among them, names of a hop-by-hop name's length (7, 10, 2), and a long one.
        for name in ["content-type", "connections", "t", "", "x-upgrade", "keep-alive2", "host", "Connection", "upgradx", "connectioN", "tf", String(repeating: "t", count: 70)] {
            #expect(!HopByHop.contains(name), "\(name)")
        }
        #expect(ResponseHeaders.acceptedName("Content-Length") == nil && !HopByHop.contains("content-length"))
        #expect(ResponseHeaders.acceptedName("Content-Type") == "content-type" && ResponseHeaders.acceptedName("X-Upgrade") == "x-upgrade")
    }
}

@Suite("Field names compared without case")
struct CaseInsensitiveNameTests {
    @Test func onlyTheCaseOfASCIILettersIsIgnored() {
        #expect("Content-Type".asciiCaseInsensitiveEquals("content-type"))
        #expect("X-REQUEST-ID".asciiCaseInsensitiveEquals("x-request-id"))
        #expect("".asciiCaseInsensitiveEquals(""))
        // Bytes that differ by 0x20 but are not letters: `@`/`` ` ``, `[`/`{`, `^`/`~`, `-`/`\r`.
        for (lhs, rhs) in [("a@", "a`"), ("a[", "a{"), ("^", "~"), ("-", "\r"), ("abc", "abd"), ("abc", "ab"), ("é", "É")] {
            #expect(!lhs.asciiCaseInsensitiveEquals(rhs), "\(lhs) \(rhs)")
        }
        // Longer than a small string, and one made from a slice.
        let long = String(repeating: "Accept-Encoding-", count: 8)
        #expect(long.asciiCaseInsensitiveEquals(String(long.lowercased()[...])))
    }

    /// Only ASCII letters are lower-cased, into a string equal to the byte-wise mapping, short
    /// (inline) or long, with other characters left as they are.
    @Test(arguments: [
        "", "content-type", "Content-Type", "HOST", "X-Forwarded-Client-Cert", "x-amzn-RequestId", "@[`{Z]", "ÉTÉ-Ä", "Größe-X", "日本-ABC",
        String(repeating: "Accept-Encoding-", count: 8),
    ])
    func lowerCasingMapsOnlyASCIILetters(text: String) {
        let mapped = String(decoding: text.utf8.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
        #expect(text.asciiLowercased == mapped)
        #expect(Array(text.asciiLowercased.utf8) == Array(mapped.utf8))
    }
}

@Suite("Field names as tokens")
struct TokenTests {
    /// RFC 9110 §5.6.2: `tchar` is a letter, a digit or one of ``!#$%&'*+-.^_`|~``. Every byte
    /// value against that rule as written there.
    @Test func everyByteIsATokenByteExactlyWhenTheRuleSaysSo() {
        let symbols = Array("!#$%&'*+-.^_`|~".utf8)
        for value in 0...255 {
            let byte = UInt8(value)
            let letter = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            let digit = (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            #expect(HTTPField.isTokenByte(byte) == (letter || digit || symbols.contains(byte)), "byte \(value)")
        }
        #expect(HTTPField.isToken("x-amz-date") && HTTPField.isToken("Content-Type") && !HTTPField.isToken("") && !HTTPField.isToken("a b"))
        #expect(!HTTPField("a:b", "v").isWellFormed && !HTTPField("x", "a\r\nb").isWellFormed && HTTPField("x", "a\tb").isWellFormed)
    }
}

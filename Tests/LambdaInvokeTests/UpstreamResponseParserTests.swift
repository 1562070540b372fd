import LambdaPayload
import NIOCore
import Testing

@testable import LambdaInvoke

@Suite("Upstream response parser")
struct UpstreamResponseParserTests {
    /// What the parser made of some bytes: each answer's head and whole body, in order.
    struct Answer: Equatable, CustomStringConvertible {
        var status: Int
        var fields: [String]
        var keepAlive: Bool
        var body: String
        var ended = false
        var description: String { "\(status) \(fields) keepAlive=\(keepAlive) body=\(body.debugDescription) ended=\(ended)" }
    }

    struct Outcome: Equatable {
        var answers: [Answer] = []
        var error: String?
    }

    /// The parser keeps where each field is, not its strings (`UpstreamHeaders`): a field asked for
    /// by name is found as NIO's `HTTPHeaders.first(name:)` finds it (the first of repeated names,
    /// in any ASCII case), every field reads back in order, and NIO's type made of them holds the
    /// same fields. One difference, on purpose: only letters are compared without case (RFC 9110
    /// §5.1), where NIO folds every byte by its case bit and takes `X-A~` for `X-A^`. The head may
    /// arrive in pieces, and what follows it is the body.
    @Test(arguments: [0, 1, 7])
    func fieldsAreFoundByNameAsNIOFindsThem(piece: Int) throws {
        let head = "HTTP/1.1 200 OK\r\nX-Amzn-RequestId: abc-123\r\nx-amz-function-error:   Unhandled  \r\nX-AMZN-REQUESTID: second\r\nEmpty:\r\nX-A^: caret\r\nContent-Length: 2\r\n\r\nok"
        var parser = UpstreamResponseParser()
        var buffer = ByteBuffer()
        var parsed: UpstreamResponseParser.Head?
        let bytes = Array(head.utf8)
        var offset = 0
        while parsed == nil && offset < bytes.count {
            let end = piece == 0 ? bytes.count : min(offset + piece, bytes.count)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            if case .head(let found)? = try parser.next(&buffer) { parsed = found }
        }
        let headers = try #require(parsed).headers
        let nio = headers.httpHeaders
        #expect(headers.map { "\($0.name)=\($0.value)" } == nio.map { "\($0.name)=\($0.value)" })
        #expect(headers.map(\.name) == ["X-Amzn-RequestId", "x-amz-function-error", "X-AMZN-REQUESTID", "Empty", "X-A^", "Content-Length"])
        for name in ["x-amzn-requestid", "X-Amz-Function-Error", "empty", "x-a^", "x-a", "content-length", "absent", ""] {
            #expect(headers.first(name: name) == nio.first(name: name), "\(name)")
        }
        #expect(headers.first(name: "x-amzn-requestid") == "abc-123")
        #expect(headers.first(name: "x-amz-function-error") == "Unhandled")
        #expect(headers.first(name: "x-a~") == nil && nio.first(name: "x-a~") == "caret", "^ and ~ differ by the case bit but are no letters")
        buffer.writeBytes(bytes[offset...])
        guard case .body(let body)? = try parser.next(&buffer) else {
            Issue.record("expected the body")
            return
        }
        #expect(String(buffer: body) == "ok")
    }

    /// Feeds `text` in pieces of `piece` bytes (0: all at once), then ends the input when `ends`.
    static func parse(_ text: String, piece: Int = 0, answersHEAD: Bool = false, ends: Bool = false) -> Outcome {
        var parser = UpstreamResponseParser()
        parser.answersHEAD = answersHEAD
        var outcome = Outcome()
        var buffer = ByteBuffer()
        let bytes = Array(text.utf8)
        func take(_ event: UpstreamResponseParser.Event) {
            switch event {
            case .head(let head):
                outcome.answers.append(Answer(status: head.status, fields: head.headers.map { "\($0.name)=\($0.value)" }, keepAlive: head.keepAlive, body: ""))
            case .body(let bytes):
                outcome.answers[outcome.answers.count - 1].body += String(buffer: bytes)
            case .end:
                outcome.answers[outcome.answers.count - 1].ended = true
            }
        }
        do throws(UpstreamResponseParser.Error) {
            var offset = 0
            repeat {
                let end = piece == 0 ? bytes.count : min(offset + piece, bytes.count)
                buffer.writeBytes(bytes[offset..<end])
                offset = end
                while let event = try parser.next(&buffer) { take(event) }
            } while offset < bytes.count
            if ends, let event = try parser.inputEnded(buffer) { take(event) }
        } catch {
            outcome.error = error.description
        }
        return outcome
    }

    /// Every way of cutting the bytes into pieces of one size gives what they give whole.
    static func expectSameInPieces(_ text: String, answersHEAD: Bool = false, ends: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) -> Outcome {
        let whole = parse(text, answersHEAD: answersHEAD, ends: ends)
        for piece in [1, 2, 3, 7, 64] {
            #expect(parse(text, piece: piece, answersHEAD: answersHEAD, ends: ends) == whole, "in pieces of \(piece)", sourceLocation: sourceLocation)
        }
        return whole
    }

    @Test func aLengthFramedAnswerKeepsItsFieldsAndBody() {
        let outcome = Self.expectSameInPieces(
            "HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 10:00:00 GMT\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
                + "x-amzn-RequestId: c6af9ac6\r\nX-Amz-Executed-Version:  $LATEST \t\r\nX-Empty:\r\n\r\n{\"order\":42}")
        #expect(outcome.error == nil)
        #expect(
            outcome.answers == [
                Answer(
                    status: 200,
                    fields: [
                        "Date=Mon, 07 Dec 2026 10:00:00 GMT", "Content-Type=application/json", "Content-Length=12", "x-amzn-RequestId=c6af9ac6",
                        "X-Amz-Executed-Version=$LATEST", "X-Empty=",
                    ],
                    keepAlive: true, body: #"{"order":42}"#, ended: true)
            ])
    }

    @Test func answersBackToBackAreReadOneAfterTheOther() {
        let outcome = Self.expectSameInPieces("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
        #expect(outcome.answers.map(\.status) == [200, 500])
        #expect(outcome.answers.map(\.body) == ["{}", ""])
        #expect(outcome.answers.allSatisfy { $0.ended })
    }

    @Test func aChunkedAnswerIsReadWithExtensionsAndTrailersLeftOut() {
        let outcome = Self.expectSameInPieces(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5;name=value\r\nhello\r\n1;x;q=\"a b\"\r\n,\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n"
                + "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(outcome.error == nil)
        #expect(outcome.answers.map(\.body) == ["hello,0123456789", ""])
        #expect(outcome.answers.map(\.ended) == [true, true])
        #expect(outcome.answers[0].keepAlive)
    }

    @Test func anAnswerWithoutFramingEndsWithTheConnection() {
        let outcome = Self.expectSameInPieces("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", ends: true)
        #expect(outcome.answers == [Answer(status: 200, fields: ["Content-Type=text/plain"], keepAlive: false, body: "all of it", ended: true)])
        // Without the end, the body goes on.
        #expect(Self.parse("HTTP/1.1 200 OK\r\n\r\nsome").answers.first?.ended == false)
    }

    @Test func interimAnswersAreSkippedAndAnUpgradeIsRefused() {
        let outcome = Self.expectSameInPieces("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        #expect(outcome.answers.map(\.status) == [200])
        #expect(outcome.answers.first?.body == "x")
        #expect(Self.parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n").error?.contains("101") == true)
    }

    @Test func headAnswersAnd204And304HaveNoBodyWhateverTheirLength() {
        let head = Self.expectSameInPieces("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", answersHEAD: true)
        #expect(head.answers.map(\.body) == ["", ""] && head.answers.allSatisfy { $0.ended })
        for status in [204, 304] {
            let outcome = Self.expectSameInPieces("HTTP/1.1 \(status) X\r\nContent-Length: 7\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            #expect(outcome.answers.map(\.body) == ["", "{}"], "\(status)")
        }
    }

    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false),
        ("HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n", false),
        ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        ("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", true),
        ("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", true),
        ("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", true),
    ])
    func keepAliveFollowsTheVersionAndConnectionField(text: String, keepAlive: Bool) {
        let outcome = Self.parse(text)
        #expect(outcome.error == nil)
        #expect(outcome.answers.first?.keepAlive == keepAlive)
    }

    @Test func aRepeatedLengthThatAgreesIsOneLength() {
        let outcome = Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\ncontent-length: 3\r\n\r\nabc")
        #expect(outcome.error == nil)
        #expect(outcome.answers.first?.body == "abc")
    }

    @Test(arguments: [
        ("not http at all\r\n\r\n", "status line"),
        ("HTTP/2 200 OK\r\n\r\n", "status line"),
        ("HTTP/1.1 2x0 OK\r\n\r\n", "three digits"),
        ("HTTP/1.1 099 Low\r\n\r\n", "under 100"),
        ("HTTP/1.1 200OK\r\n\r\n", "reason phrase"),
        ("HTTP/1.1 200 O\u{1}K\r\n\r\n", "control byte"),
        ("HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", "bare LF"),
        ("HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n\r\n", "bare CR"),
        ("HTTP/1.1 200 OK\r\nX-A: 1\r\n\rX-B: 2\r\n\r\n", "bare CR"),
        ("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", "folded"),
        ("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", "not a token"),
        ("HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "without a name"),
        ("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "without a colon"),
        ("HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\n\r\n", "control byte"),
        ("HTTP/1.1 200 OK\r\nX-A: a\u{7F}b\r\n\r\n", "control byte"),
        ("HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", "not a number"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a number"),
        ("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", "not a number"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n", "not a number"),
        ("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "empty Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n", "two different"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "two different"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "both Content-Length and Transfer-Encoding"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "not the one coding"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "not the one coding"),
        ("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "hex number"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "hex number"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", "more than 15"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n", "other than an extension"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a\r\n", "other than an extension"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\n", "without a name"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\r\n", "without a value"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\u{0}\r\n", "other than an extension"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"\u{E9}\"\r\n", "quoted value holds"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"open\r\n", "not closed"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "not followed by CRLF"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n", "bare LF"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", "not a token"),
    ])
    func malformedAnswersAreErrorsThatSayWhy(text: String, expected: String) {
        for piece in [0, 1] {
            let outcome = Self.parse(text, piece: piece)
            #expect(outcome.error?.contains(expected) == true, "\(text.debugDescription) in pieces of \(piece): \(String(describing: outcome.error))")
        }
    }

    @Test func aHeadOrChunkLineOverItsLimitIsAnErrorBeforeItEnds() {
        let long = "HTTP/1.1 200 OK\r\nX-Long: " + String(repeating: "a", count: UpstreamResponseParser.maximumHeadBytes)
        #expect(Self.parse(long, piece: 4096).error?.contains("the head is over") == true)
        let whole = "HTTP/1.1 200 OK\r\nX-Long: " + String(repeating: "a", count: UpstreamResponseParser.maximumHeadBytes) + "\r\n\r\n"
        #expect(Self.parse(whole).error?.contains("the head is over") == true)
        let extensions = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "x", count: UpstreamResponseParser.maximumChunkLineBytes)
        #expect(Self.parse(extensions).error?.contains("chunk size line is over") == true)
        let trailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + String(repeating: "X-T: 0123456789012345678901234567890\r\n", count: 3000)
        #expect(Self.parse(trailers).error == "the trailer section is over \(UpstreamResponseParser.maximumHeadBytes) bytes")
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nContent-Len",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    ])
    func anAnswerCutShortByTheEndOfInputIsAnError(text: String) {
        #expect(Self.parse(text, ends: true).error == "the connection ended in the middle of an answer")
    }

    @Test func theEndOfInputBetweenAnswersIsNoError() {
        let outcome = Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", ends: true)
        #expect(outcome.error == nil && outcome.answers.count == 1 && outcome.answers[0].ended)
    }

    /// The eight-at-a-time check agrees with the byte test for every byte value at every position.
    @Test func everyByteValueIsJudgedAsAFieldValueByteAnywhereInAValue() {
        for value in 0...255 {
            let byte = UInt8(value)
            let allowed = byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
            for position in 0..<20 {
                var bytes = Array(repeating: UInt8(ascii: "a"), count: 20)
                bytes[position] = byte
                let judged = bytes.withUnsafeBytes { HTTP1Syntax.areFieldValueBytes($0) }
                #expect(judged == allowed, "byte \(value) at \(position)")
            }
        }
    }

    @Test func afterAnErrorNothingMoreIsRead() throws {
        var parser = UpstreamResponseParser()
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(throws: UpstreamResponseParser.Error.self) { _ = try parser.next(&buffer) }
        #expect(try parser.next(&buffer) == nil)
    }
}

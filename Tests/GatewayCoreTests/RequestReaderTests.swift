import NIOHTTP1
import Testing

@testable import GatewayCore

/// The head's fields are read in one pass (`HeadFields`): each fact as NIO's `HTTPHeaders`
/// look-ups it replaces read it.
@Suite("The request reader's head checks")
struct RequestReaderTests {
    static let expectFields: [[(String, String)]] = [
        [("Expect", "100-continue")],
        [("expect", "100-CONTINUE")],
        [("EXPECT", " \t100-continue\t ")],
        [("expect", "foo, 100-continue")],
        [("expect", "foo,bar"), ("Expect", "100-continue")],
        [("expect", "100-continued")],
        [("expect", "100 -continue")],
        [("expect", ",,")],
        [("expect", "")],
        [("expects", "100-continue")],
        [("x-expect", "100-continue")],
        [],
    ]

    @Test(arguments: expectFields)
    func expectContinueAsNIOReadIt(fields: [(String, String)]) {
        let headers = HTTPHeaders(fields)
        let nio = headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
        #expect(HeadFields(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: headers)).expectsContinue == nio)
    }

    /// Lists are split at their comma bytes (RFC 9110 §5.6.1), where NIO split a `String` at
    /// comma characters: a comma followed by a combining mark was one grapheme to NIO, and no
    /// split. Here `close,\u{301}` holds `close`, and `100-continue,\u{301}` holds the go-ahead.
    @Test func listsAreSplitAtCommaBytesEvenBeforeACombiningMark() {
        let close = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: HTTPHeaders([("Connection", "close,\u{301}")]))
        #expect(HeadFields(close).endsConnection)
        let keep = HTTPRequestHead(version: .http1_0, method: .GET, uri: "/", headers: HTTPHeaders([("Connection", "keep-alive,\u{301}")]))
        #expect(!HeadFields(keep).endsConnection)
        let expect = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: HTTPHeaders([("Expect", "100-continue,\u{301}")]))
        #expect(HeadFields(expect).expectsContinue)
    }

    /// The fields a request carries on, in order, each value without the optional whitespace
    /// around it (RFC 9110 §5.5; the HTTP/1.1 parser strips it already, HTTP/2 refuses it).
    @Test func fieldsAreCarriedInOrderWithoutSurroundingWhitespace() {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: HTTPHeaders([("Host", "a"), ("x-role", " guest\t"), ("X-Empty", " "), ("x-role", "admin")]))
        let fields = HeadFields(head).fields
        #expect(fields.map(\.name) == ["Host", "x-role", "X-Empty", "x-role"])
        #expect(fields.map(\.value) == ["a", "guest", "", "admin"])
    }

    /// The protocol a request's payload names is the version's interpolation, for the versions
    /// written as literals and for the others.
    @Test(arguments: [(1, 1), (1, 0), (2, 0), (0, 9), (2, 1), (3, 0)])
    func protocolNameIsTheVersionsText(major: Int, minor: Int) {
        let version = HTTPVersion(major: major, minor: minor)
        #expect(RequestReader.protocolName(version) == "HTTP/\(version.major).\(version.minor)")
    }

    static let heads: [[(String, String)]] = [
        [("Host", "a")],
        [("host", "a"), ("HOST", "b")],
        [("Host", "a"), ("Content-Length", "10")],
        [("Host", "a"), ("content-length", "11"), ("Content-Length", "5")],
        [("Host", "a"), ("CONTENT-LENGTH", "x")],
        [("Host", "a"), ("Transfer-Encoding", "chunked")],
        [("Host", "a"), ("transfer-encodings", "chunked"), ("content-lengths", "99")],
        [],
    ]

    /// Duplicate hosts, a missing one, `Transfer-Encoding` on HTTP/1.0 and a declared length over
    /// the limit: the verdict NIO's look-ups (`first(name:)`, `contains(name:)`) gave.
    @Test(arguments: heads, [HTTPVersion.http1_0, .http1_1])
    func headRefusalsAsNIOReadThem(fields: [(String, String)], version: HTTPVersion) {
        let head = HTTPRequestHead(version: version, method: .POST, uri: "/", headers: HTTPHeaders(fields))
        let hosts = fields.filter { $0.0.lowercased() == "host" }.count
        let expected: String?
        if hosts > 1 {
            expected = "DuplicateHost"
        } else if version == .http1_1 && hosts == 0 {
            expected = "MissingHost"
        } else if version == .http1_0 && head.headers.contains(name: "transfer-encoding") {
            expected = "InvalidTransferEncoding"
        } else if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > 10 {
            expected = "RequestTooLarge"
        } else {
            expected = nil
        }
        let refusal = RequestReader.refusal(of: head, fields: HeadFields(head), limit: 10)
        #expect(refusal?.details == expected.map { "rejected{\($0)}" })
    }
}

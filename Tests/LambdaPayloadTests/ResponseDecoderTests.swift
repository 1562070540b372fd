import LambdaPayload
import NIOCore
import Testing

func respond(
    _ payload: String,
    _ format: PayloadFormat = .envoy,
    status: Int = 200,
    functionError: String? = nil,
    passthrough: Bool = false,
    method: String = "GET"
) throws -> LambdaHTTPResponse {
    try ResponseDecoder.response(
        for: LambdaInvocationResult(statusCode: status, functionError: functionError, requestID: "req-1", payload: ByteBuffer(string: payload)),
        format: format,
        passthrough: passthrough,
        method: method
    )
}

@Suite("Response mapping")
struct ResponseDecoderTests {
    /// A repeated member: the last one counts (as JSON parsers keep it), and the camel-case name
    /// before the snake-case one, whatever their order.
    @Test(arguments: PayloadFormat.allCases)
    func theLastOfARepeatedMemberCounts(format: PayloadFormat) throws {
        let response = try respond(
            #"{"status_code":500,"statusCode":200,"body":"first","statusCode":202,"is_base64_encoded":true,"isBase64Encoded":false,"body":"last","headers":{"x-a":"1"},"headers":{"x-b":"2"}}"#,
            format)
        #expect(response.status == 202)
        #expect(String(buffer: response.body) == "last")
        #expect(response.values("x-a").isEmpty && response.values("x-b") == ["2"])
    }

    @Test(arguments: PayloadFormat.allCases)
    func shapedResponseWithHeadersAndCookies(format: PayloadFormat) throws {
        let response = try respond(#"{"statusCode":201,"headers":{"x-order":"42"},"cookies":["a=1; Path=/"],"body":"{\"id\":42}"}"#, format)
        #expect(response.status == 201)
        #expect(response.values("content-type") == ["application/json"])
        #expect(response.values("x-order") == ["42"])
        #expect(response.values("set-cookie") == ["a=1; Path=/"])
        #expect(response.values("x-amzn-requestid") == ["req-1"])
        #expect(String(buffer: response.body) == #"{"id":42}"#)
    }

    /// A cookie carrying CR, LF or NUL would split the response: it is dropped, the others kept
    /// (found by FuzzResponseDecoder; headers and multiValueHeaders were checked already).
    @Test(arguments: PayloadFormat.allCases)
    func aCookieThatWouldSplitTheResponseIsDropped(format: PayloadFormat) throws {
        let response = try respond(#"{"statusCode":302,"cookies":["a=1; \rPath=/","b=2","c=3\nx-evil: 1","d=4\u0000"],"body":null}"#, format)
        #expect(response.values("set-cookie") == ["b=2"])
        #expect(response.values("x-evil").isEmpty)
    }

    @Test(arguments: PayloadFormat.allCases)
    func base64BodyIsDecoded(format: PayloadFormat) throws {
        let response = try respond(#"{"status_code":200,"body":"aGk=","is_base64_encoded":true}"#, format)
        #expect(response.status == 200)
        #expect(String(buffer: response.body) == "hi")
    }

    @Test func envoyTreatsBodyOnlyObjectAsShaped() throws {
        let response = try respond(#"{"body":"plain","headers":{"content-type":"text/plain"}}"#, .envoy)
        #expect(response.status == 200)
        #expect(response.values("content-type") == ["text/plain"])
        #expect(String(buffer: response.body) == "plain")
    }

    @Test func apiGatewayNeedsAStatusCodeToBeShaped() throws {
        let payload = #"{"body":"plain","headers":{"content-type":"text/plain"}}"#
        let response = try respond(payload, .apiGatewayV2)
        #expect(response.status == 200)
        #expect(response.values("content-type") == ["application/json"])
        #expect(String(buffer: response.body) == payload)
    }

    @Test(arguments: PayloadFormat.allCases)
    func unshapedResultsAreReturnedAsJSON(format: PayloadFormat) throws {
        for payload in [#"{"message":"hi"}"#, #""Hello, world!""#, "[1,2]", "42", "null"] {
            let response = try respond(payload, format)
            #expect(response.status == 200)
            #expect(response.values("content-type") == ["application/json"])
            #expect(String(buffer: response.body) == payload)
        }
    }

    @Test func emptyResultIsEmpty200() throws {
        let response = try respond("  \n", .envoy)
        #expect(response.status == 200)
        #expect(response.values("content-type").isEmpty)
        #expect(response.body.readableBytes == 0)
    }

    @Test(arguments: [
        #"{"statusCode":"abc"}"#, #"{"statusCode":700}"#, #"{"statusCode":201.5}"#, "{not json", #"{"statusCode":200,"body":"@@","isBase64Encoded":true}"#,
        #"{"statusCode":200,"headers":{"x":{"y":1}}}"#, #"{"statusCode":200,"isBase64Encoded":"maybe"}"#,
    ])
    func malformedResultsAreInvalidFunctionResponse(payload: String) {
        do {
            _ = try respond(payload, .envoy)
            Issue.record("expected an error for \(payload)")
        } catch let error as PayloadError {
            #expect(error.code == .invalidFunctionResponse)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    /// A 1xx (or anything outside 200-599) is never a final answer, in any spelling or format.
    @Test(
        arguments: [
            #"{"statusCode":100}"#, #"{"statusCode":101,"headers":{"upgrade":"websocket"}}"#, #"{"statusCode":"103"}"#, #"{"status_code":199}"#, #"{"statusCode":1.01e2}"#, #"{"statusCode":600}"#,
            #"{"statusCode":-200}"#,
        ], [PayloadFormat.envoy, .apiGatewayV2])
    func nonFinalStatusesAreInvalidFunctionResponse(payload: String, format: PayloadFormat) {
        do {
            let response = try respond(payload, format)
            Issue.record("expected an error for \(payload), got \(response.status)")
        } catch let error as PayloadError {
            #expect(error.code == .invalidFunctionResponse)
            #expect(error.message.contains("200 to 599"), "\(error.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    /// Every header whose meaning belongs to the connection, not to the function, is dropped, in
    /// `headers` and `multiValueHeaders` alike; the function's other headers stay.
    @Test(arguments: ["content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "proxy-connection", "te", "trailer"])
    func headersTheGatewayOwnsAreDropped(name: String) throws {
        let single = try respond(#"{"statusCode":200,"headers":{"\#(name.uppercased())":"x","x-kept":"1"},"body":"ok"}"#)
        let multi = try respond(#"{"statusCode":200,"multiValueHeaders":{"\#(name)":["x","y"],"x-kept":["1"]},"body":"ok"}"#)
        for response in [single, multi] {
            #expect(response.values(name).isEmpty, "\(name) reached the client: \(response.headers)")
            #expect(response.values("x-kept") == ["1"])
            #expect(String(buffer: response.body) == "ok")
        }
    }

    @Test func responseHeadersOverTheLimitAreInvalidFunctionResponse() throws {
        let value = String(repeating: "v", count: 1000)
        func headers(_ count: Int) -> String {
            "{" + (1...count).map { #""x-h\#($0)":"\#(value)""# }.joined(separator: ",") + "}"
        }
        // 60 fields of ~1 KB fit in 64 KiB; 70 do not.
        #expect(try respond(#"{"statusCode":200,"headers":\#(headers(60))}"#).values("x-h60").count == 1)
        #expect(throws: PayloadError.self) { try respond(#"{"statusCode":200,"headers":\#(headers(70))}"#) }
        do {
            _ = try respond(#"{"statusCode":200,"multiValueHeaders":{"x-many":[\#((1...70).map { _ in "\"\(value)\"" }.joined(separator: ","))]}}"#)
            Issue.record("multiValueHeaders over the limit were accepted")
        } catch let error as PayloadError {
            #expect(error.code == .invalidFunctionResponse && error.message.contains("65536-byte limit"), "\(error.message)")
        }
    }

    @Test func statusCodeLeniency() throws {
        #expect(try respond(#"{"statusCode":"404"}"#).status == 404)
        #expect(try respond(#"{"statusCode":2.01e2}"#).status == 201)
        #expect(try respond(#"{"statusCode":0,"body":"x"}"#).status == 200)
        #expect(try respond(#"{"statusCode":null,"body":"x"}"#).status == 200)
    }

    @Test func headerValueRules() throws {
        let response = try respond(
            #"{"statusCode":200,"headers":{"X-A":"1","x-a":"2","x-n":5,"x-b":true,"x-null":null,"x-list":["p","q"],"content-length":"99","Connection":"close",":status":"500","bad name":"v","x-split":"a\r\nx: y"},"body":{"k":[1]}}"#
        )
        #expect(response.values("x-a") == ["2"])
        #expect(response.values("x-n") == ["5"])
        #expect(response.values("x-b") == ["true"])
        #expect(response.values("x-null").isEmpty)
        #expect(response.values("x-list") == ["p", "q"])
        #expect(response.values("content-length").isEmpty)
        #expect(response.values("connection").isEmpty)
        #expect(response.values(":status").isEmpty)
        #expect(response.values("bad name").isEmpty)
        #expect(response.values("x-split").isEmpty)
        #expect(String(buffer: response.body) == #"{"k":[1]}"#)
    }

    @Test func multiValueHeadersReplaceSingleOnes() throws {
        let response = try respond(#"{"statusCode":200,"headers":{"x-a":"1","x-b":"2"},"multiValueHeaders":{"x-a":["m","n"]}}"#)
        #expect(response.values("x-a") == ["m", "n"])
        #expect(response.values("x-b") == ["2"])
    }

    @Test func functionErrorIs502WithTheErrorBody() throws {
        let error = #"{"errorMessage":"boom","errorType":"Error","stackTrace":["at x"]}"#
        let response = try respond(error, functionError: "Unhandled")
        #expect(response.status == 502)
        #expect(response.values("x-amz-function-error") == ["Unhandled"])
        #expect(response.values("content-type") == ["application/json"])
        #expect(String(buffer: response.body) == error)
    }

    @Test func asyncAcceptedIs202WithoutBody() throws {
        let response = try respond("", status: 202)
        #expect(response.status == 202)
        #expect(response.body.readableBytes == 0)
        #expect(response.values("x-amzn-requestid") == ["req-1"])
    }

    @Test func passthroughReturnsThePayloadUnchanged() throws {
        let response = try respond(#"{"statusCode":500}"#, passthrough: true)
        #expect(response.status == 200)
        #expect(String(buffer: response.body) == #"{"statusCode":500}"#)
    }

    @Test func headAnd204CarryNoBody() throws {
        #expect(try respond(#"{"statusCode":200,"body":"x"}"#, method: "HEAD").body.readableBytes == 0)
        #expect(try respond(#"{"statusCode":204,"body":"x"}"#).body.readableBytes == 0)
    }

    @Test func errorResponsesAreJSON() {
        let response = LambdaHTTPResponse.error(status: 429, code: "TooManyRequestsException", message: "Rate \"exceeded\"", headers: [HTTPField("retry-after", "2")])
        #expect(response.status == 429)
        #expect(String(buffer: response.body) == #"{"error":"TooManyRequestsException","message":"Rate \"exceeded\""}"#)
        #expect(response.values("retry-after") == ["2"])
    }
}

@Suite("JSON parser")
struct JSONParserTests {
    @Test(arguments: ["{", "[1,]", "{\"a\":1,}", "01", "1.", "tru", "\"\\x\"", "\"a\nb\"", "[1] 2", "\"\\ud800\"", "-", String(repeating: "[", count: 600)])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    /// Strings are checked eight bytes at a time for a byte above ASCII; one anywhere, in a whole
    /// word or in the bytes after the last, sends the string through full UTF-8 validation.
    @Test func stringsOfEveryLengthWithAByteAboveASCIIAnywhere() throws {
        for length in 0...20 {
            let ascii = String(repeating: "a", count: length)
            #expect(try JSONParser.parse(Array("\"\(ascii)\"".utf8)) == .string(ascii))
            for position in 0..<length {
                var bytes = Array(ascii.utf8)
                bytes[position] = 0xFF
                #expect(throws: JSONParser.Error.self, "0xFF at \(position) of \(length)") { try JSONParser.parse([UInt8(ascii: "\"")] + bytes + [UInt8(ascii: "\"")]) }
                var valid = ascii
                valid.insert("é", at: valid.index(valid.startIndex, offsetBy: position))
                #expect(try JSONParser.parse(Array("\"\(valid)\"".utf8)) == .string(valid))
            }
        }
        // After an escape the string is made from a copy, checked the same way.
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array("\"\\n".utf8) + [0xC3, UInt8(ascii: "\"")]) }
    }

    @Test func parsesAndRoundTrips() throws {
        let text = #"{"a":[1,-2.5e3,true,false,null],"b":{"c":"\u00e9\ud83d\ude00\n"}}"#
        let value = try JSONParser.parse(Array(text.utf8))
        #expect(value["b"]?["c"] == .string("é😀\n"))
        #expect(value.jsonText == #"{"a":[1,-2.5e3,true,false,null],"b":{"c":"é😀\n"}}"#)
    }
}

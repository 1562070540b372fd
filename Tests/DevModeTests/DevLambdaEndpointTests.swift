import AWSSigV4
import Foundation
import NIOCore
import TestSupport
import Testing

@testable import DevMode

/// Dev mode's Lambda endpoint decides like Lambda's front end: signature first, then the function.
@Suite("dev Lambda endpoint")
struct DevLambdaEndpointTests {
    static let verifier = SigV4Verifier(credentials: DevLambdaEndpoint.credentials)
    static let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Agreeting/invocations"

    /// Headers of a request signed the way the gateway signs Invoke.
    static func signed(path: String = path, body: String, credentials: Credentials = DevLambdaEndpoint.credentials, date: Date = Date(), type: String = "RequestResponse") -> [(
        name: String, value: String
    )] {
        var headers = [("host", "127.0.0.1:9000"), ("content-type", "application/json"), ("x-amz-invocation-type", type)]
        let request = SigV4Request(method: "POST", path: path, headers: headers.map { SigV4Header($0.0, $0.1) }, payloadHash: SigV4Signer.payloadHash(Array(body.utf8)))
        let signature = SigV4Signer(service: "lambda", region: "us-east-1").sign(request, credentials: credentials, date: date)
        headers += signature.headersToAdd.map { ($0.name, $0.value) }
        return headers.map { (name: $0.0, value: $0.1) }
    }

    static func answer(path: String = path, headers: [(name: String, value: String)], body: String) -> (status: Int, headers: [(String, String)], body: String) {
        let result = DevLambdaEndpoint.answer(method: "POST", uri: path, headers: headers, body: ByteBuffer(string: body), verifier: verifier)
        return (result.status, result.headers, String(buffer: result.body))
    }

    static func errorType(_ headers: [(String, String)]) -> String? { headers.first { $0.0 == "x-amzn-ErrorType" }?.1 }

    @Test func aSignedCallRunsTheFunction() {
        let event = #"{"rawPath":"/greet","queryStringParameters":{"name":"Ada"}}"#
        let result = Self.answer(headers: Self.signed(body: event), body: event)
        #expect(result.status == 200)
        #expect(result.body.contains(#"Hello, Ada!"#))
    }

    @Test func aChangedBodyIsASignatureMismatch() {
        let result = Self.answer(headers: Self.signed(body: #"{"a":1}"#), body: #"{"a":2}"#)
        #expect(result.status == 403 && Self.errorType(result.headers) == "InvalidSignatureException")
    }

    @Test func aWrongSecretIsASignatureMismatchAndAnUnknownKeyIsUnrecognized() {
        let wrongSecret = Credentials(accessKeyID: DevLambdaEndpoint.credentials.accessKeyID, secretAccessKey: "guess")
        #expect(Self.errorType(Self.answer(headers: Self.signed(body: "{}", credentials: wrongSecret), body: "{}").headers) == "InvalidSignatureException")
        let otherKey = Credentials(accessKeyID: "AKIDOTHER", secretAccessKey: "x")
        #expect(Self.errorType(Self.answer(headers: Self.signed(body: "{}", credentials: otherKey), body: "{}").headers) == "UnrecognizedClientException")
    }

    @Test func anOldSignatureHasExpiredAndAMissingOneIsIncomplete() {
        let old = Self.answer(headers: Self.signed(body: "{}", date: Date().addingTimeInterval(-3600)), body: "{}")
        #expect(old.status == 403 && old.body.contains("Signature expired"))
        let unsigned = Self.answer(headers: [("content-type", "application/json")], body: "{}")
        #expect(unsigned.status == 403 && Self.errorType(unsigned.headers) == "IncompleteSignatureException")
    }

    @Test func unknownFunctionsAndInvocationTypes() {
        let missing = "/2015-03-31/functions/nothing-here/invocations"
        let notFound = Self.answer(path: missing, headers: Self.signed(path: missing, body: "{}"), body: "{}")
        #expect(notFound.status == 404 && Self.errorType(notFound.headers) == "ResourceNotFoundException" && notFound.body.contains("nothing-here"))
        #expect(Self.answer(headers: Self.signed(body: "{}", type: "Event"), body: "{}").status == 202)
        #expect(Self.answer(headers: Self.signed(body: "{}", type: "DryRun"), body: "{}").status == 204)
        let invalid = Self.answer(headers: Self.signed(body: "not json"), body: "not json")
        #expect(invalid.status == 400 && Self.errorType(invalid.headers) == "InvalidRequestContentException")
    }

    static let streamPath = "/2021-11-15/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Acountdown/response-streaming-invocations"

    /// The stream of a signed `InvokeWithResponseStream` call, its frames decoded by botocore's own
    /// event-stream reader: the frames are what an AWS SDK reads.
    static func streamed(_ event: String) async throws -> (headers: [(String, String)], messages: [[String: String]]) {
        let reply = DevLambdaEndpoint.reply(method: "POST", uri: streamPath, headers: signed(path: streamPath, body: event), body: ByteBuffer(string: event), verifier: verifier)
        guard case .stream(let headers, let stream) = reply else { throw TestSupportError("not a stream: \(reply)") }
        var bytes = ByteBuffer()
        for step in stream.steps {
            guard var frame = DevStream.frames(of: step) else { break }
            bytes.writeBuffer(&frame)
        }
        let script = #"""
            import base64, json, sys
            from botocore.eventstream import EventStreamBuffer
            buffer = EventStreamBuffer()
            buffer.add_data(base64.b64decode(sys.stdin.read()))
            try:
                print(json.dumps([{"type": m.headers[":event-type"], "payload": m.payload.decode()} for m in buffer]))
            except Exception as error:
                print(json.dumps([{"type": "error", "payload": type(error).__name__}]))
            """#
        let output = try await ChildProcess.run(["python3", "-c", script], input: Data(bytes.readableBytesView).base64EncodedString())
        let messages = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: String]]
        return (headers, try #require(messages, "\(output.stderr)"))
    }

    @Test func aStreamedCallWritesEventsBotocoreReads() async throws {
        let (headers, messages) = try await Self.streamed(#"{"query_string_parameters":{"n":"2"}}"#)
        #expect(headers.contains { $0.0 == "content-type" && $0.1 == "application/vnd.amazon.eventstream" })
        #expect(messages.map { $0["type"]! } == ["PayloadChunk", "PayloadChunk", "PayloadChunk", "PayloadChunk", "InvokeComplete"])
        #expect(messages[0]["payload"]!.hasPrefix(#"{"statusCode":200"#), "the prelude first")
        #expect(messages[2]["payload"] == "data: tick 1 of 2\n\n" && messages[3]["payload"] == "data: tick 2 of 2\n\n")
        #expect(messages[4]["payload"] == "{}")
        let failing = try await Self.streamed(#"{"query_string_parameters":{"n":"3","prelude":"0","fail_after":"1"}}"#)
        #expect(failing.messages.map { $0["type"]! } == ["PayloadChunk", "InvokeComplete"])
        #expect(failing.messages[1]["payload"]?.contains(#""ErrorCode":"Unhandled""#) == true)
        let corrupt = try await Self.streamed(#"{"query_string_parameters":{"n":"3","prelude":"0","corrupt_after":"1"}}"#)
        #expect(corrupt.messages.last?["payload"] == "ChecksumMismatch", "botocore refuses the corrupt frame too")
    }

    @Test func theStreamingOperationChecksItsSignatureAndFunction() {
        let unsigned = DevLambdaEndpoint.answer(method: "POST", uri: Self.streamPath, headers: [("content-type", "application/json")], body: ByteBuffer(string: "{}"), verifier: Self.verifier)
        #expect(unsigned.status == 403)
        let missing = "/2021-11-15/functions/nothing-here/response-streaming-invocations"
        #expect(DevLambdaEndpoint.answer(method: "POST", uri: missing, headers: Self.signed(path: missing, body: "{}"), body: ByteBuffer(string: "{}"), verifier: Self.verifier).status == 404)
        let event = DevLambdaEndpoint.answer(
            method: "POST", uri: Self.streamPath, headers: Self.signed(path: Self.streamPath, body: "{}", type: "Event"), body: ByteBuffer(string: "{}"), verifier: Self.verifier)
        #expect(event.status == 400, "an asynchronous call has no stream")
    }

    @Test func echoReturnsTheEventAsTheBody() throws {
        let event = #"{"raw_path":"/x","method":"GET"}"#
        let result = String(buffer: DevFunction.echo.invoke(event: ByteBuffer(string: event)))
        #expect(result.contains(#""body":"{\"raw_path\":\"/x\",\"method\":\"GET\"}""#) && result.contains(#""statusCode":200"#))
    }
}

import AWSAPI
import TestSupport
import Testing

/// What goes on the wire, as a scripted endpoint records it: paths, queries, targets and the
/// headers that are signed. (moto checks the signatures themselves: MotoLambdaTests, MotoSSMTests.)
@Suite("AWS requests on the wire")
struct WireFormatTests {
    func record(_ answer: ScriptedResponse, _ call: (AWSAPIClient) async throws -> Void) async throws -> RecordedRequest {
        let server = try await TestHTTPServer { _ in answer }
        return try await withTeardown(
            {
                try await withClient(try makeClient(endpoint: server.baseURL)) { client in try await call(client) }
                return try #require(server.requests.first)
            }, teardown: { await server.shutdown() })
    }

    @Test func arnIsOnePercentEncodedPathSegment() async throws {
        let request = try await record(ScriptedResponse(json: #"{"Tags":{"consul.hashicorp.com/mesh":"true"}}"#)) { client in
            let tags = try await client.lambda.listTags(resource: "arn:aws:lambda:us-east-1:123456789012:function:orders")
            #expect(tags == ["consul.hashicorp.com/mesh": "true"])
        }
        #expect(request.method == "GET")
        #expect(request.uri == "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders")
        let authorization = try #require(request.header("Authorization"))
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
        #expect(authorization.contains("/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature="))
        #expect(request.header("Host") == request.header("host"))
    }

    @Test func markerIsPercentEncodedInTheQuery() async throws {
        let request = try await record(ScriptedResponse(json: #"{"Functions":[{"FunctionName":"a","FunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:a"}],"NextMarker":"ab+/c=="}"#)) {
            client in
            let page = try await client.lambda.listFunctions(marker: "x+y/z==", maxItems: 3)
            #expect(page == ListFunctionsPage(functions: [LambdaFunctionSummary(name: "a", arn: "arn:aws:lambda:us-east-1:123456789012:function:a")], nextMarker: "ab+/c=="))
        }
        #expect(request.uri == "/2015-03-31/functions/?MaxItems=3&Marker=x%2By%2Fz%3D%3D")
    }

    @Test func ssmCallIsJSON11WithItsTargetSigned() async throws {
        let request = try await record(ScriptedResponse(headers: [("Content-Type", "application/x-amz-json-1.1")], body: Array(#"{"Version":2,"Tier":"Advanced"}"#.utf8))) { client in
            try await client.ssm.putParameter(name: "/lambda_extension_data/default/default/orders", value: "line 1\n\"quoted\"", tier: .advanced)
        }
        #expect(request.method == "POST")
        #expect(request.uri == "/")
        #expect(request.header("X-Amz-Target") == "AmazonSSM.PutParameter")
        #expect(request.header("Content-Type") == "application/x-amz-json-1.1")
        #expect(request.header("Content-Length") == String(request.body.count))
        #expect(request.header("Authorization")?.contains("/us-east-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, ") == true)
        #expect(request.bodyText == #"{"Name":"/lambda_extension_data/default/default/orders","Value":"line 1\n\"quoted\"","Type":"SecureString","Overwrite":true,"Tier":"Advanced"}"#)
    }

    @Test func answerWithoutTheExpectedFieldsIsMalformed() async throws {
        _ = try await record(ScriptedResponse(json: #"{"Configuration":{"FunctionName":"orders"}}"#)) { client in
            let error = await #expect(throws: AWSAPIError.self) { try await client.lambda.getFunction("orders") }
            #expect(error?.code == .malformedResponse)
            #expect(error?.message.contains("FunctionArn") == true)
        }
    }
}

import AWSSigV4
import Foundation
import Testing

@Suite("Prepared SigV4 templates sign exactly like the general signer")
struct SigV4TemplateTests {
    static let paths = [
        "/2015-03-31/functions/" + URIEncoding.encode("arn:aws:lambda:us-east-1:123456789012:function:orders:live") + "/invocations",
        "/2015-03-31/functions/my-fn/invocations",
        "/a/./b//c",
    ]

    @Test(arguments: paths, [nil, "SESSION TOKEN"] as [String?])
    func sameSignatureAsTheGeneralPath(path: String, token: String?) {
        for options in [SigV4Options(), SigV4Options(normalizePath: false, signSessionToken: false, addContentSHA256Header: true)] {
            let signer = SigV4Signer(service: "lambda", region: "eu-west-1", options: options)
            let credentials = Credentials(accessKeyID: "AKID", secretAccessKey: "secret", sessionToken: token)
            let template = signer.prepare(
                method: "POST",
                path: path,
                query: "b=2&a=1",
                fixedHeaders: [SigV4Header("Host", "lambda.eu-west-1.amazonaws.com:8443"), SigV4Header("Content-Type", " application/json ")],
                variableHeaderNames: ["X-Amz-Invocation-Type", "x-custom"]
            )
            for (second, type) in [(0.0, "RequestResponse"), (86_500, "Event")] {
                let date = Date(timeIntervalSince1970: 1_768_037_400 + second)
                let hash = SigV4Signer.payloadHash(Array("{\"n\":\(second)}".utf8))
                let general = signer.sign(
                    SigV4Request(
                        method: "POST", path: path, query: "b=2&a=1",
                        headers: [
                            SigV4Header("Host", "lambda.eu-west-1.amazonaws.com:8443"), SigV4Header("Content-Type", " application/json "),
                            SigV4Header("X-Amz-Invocation-Type", type), SigV4Header("x-custom", "a  b"),
                        ],
                        payloadHash: hash
                    ),
                    credentials: credentials,
                    date: date
                )
                let prepared = signer.sign(template, values: [type, "a  b"], payloadHash: hash, credentials: credentials, date: date)
                #expect(prepared == general)
                let hashedHere = Array("{\"n\":\(second)}".utf8).withUnsafeBytes { signer.sign(template, values: [type, "a  b"], payload: $0, credentials: credentials, date: date) }
                #expect(hashedHere == general)
            }
        }
    }

    @Test func lambdaInvokeVectorsThroughATemplate() throws {
        // invoke-arn-path-encoded-session-token, as the gateway prepares it.
        let signer = SigV4Signer(service: "lambda", region: "us-east-1")
        let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn%3Aprod/invocations"
        let template = signer.prepare(
            method: "POST", path: path, fixedHeaders: [SigV4Header("content-type", "application/json"), SigV4Header("host", "lambda.us-east-1.amazonaws.com")],
            variableHeaderNames: ["x-amz-invocation-type"])
        let directory = SigV4TestSuite.root.appendingPathComponent("lambda-invoke/invoke-arn-path-encoded-session-token")
        let vector = try SigV4TestSuite.cAuthCase(directory, suite: "lambda-invoke")
        let signature = signer.sign(template, values: ["RequestResponse"], payloadHash: SigV4Signer.payloadHash(vector.request.body), credentials: vector.credentials, date: vector.date)
        #expect(signature.signature == vector.expectedSignature)
        let single = vector.request.body.withUnsafeBytes { signer.sign(template, value: "RequestResponse", payload: $0, credentials: vector.credentials, date: vector.date) }
        #expect(single == signature)
    }
}

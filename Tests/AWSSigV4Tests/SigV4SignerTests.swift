import AWSSigV4
import Foundation
import Testing

@Suite("SigV4 official suites")
struct SigV4SuiteTests {
    @Test func sharedTestDataIsPresent() {
        #expect(
            SigV4TestSuite.rootExists,
            "SigV4 vectors not found at \(SigV4TestSuite.root.path): check out shared/ beside the repository or set LAMBDA_GATEWAY_SHARED_DIR"
        )
        #expect(SigV4TestSuite.cAuthCases(folder: "aws-c-auth/aws-signing-test-suite/v4").count == 38)
        #expect(SigV4TestSuite.botocoreCases().count >= 34)
        #expect(SigV4TestSuite.cAuthCases(folder: "lambda-invoke").count == 5)
    }

    @Test(arguments: SigV4TestSuite.cAuthCases(folder: "aws-c-auth/aws-signing-test-suite/v4"))
    func awsCAuthV4(_ vector: SigV4TestSuite.Case) {
        check(vector)
    }

    @Test(arguments: SigV4TestSuite.botocoreCases())
    func botocoreAWS4TestSuite(_ vector: SigV4TestSuite.Case) {
        check(vector)
    }

    @Test(arguments: SigV4TestSuite.cAuthCases(folder: "lambda-invoke"))
    func lambdaInvokeVectors(_ vector: SigV4TestSuite.Case) {
        check(vector)
    }

    // SigV4a (ECDSA, aws-c-auth `v4a/`) is not implemented: Lambda Invoke uses SigV4, and Envoy's
    // aws_lambda filter does not support SigV4a either.

    func check(_ vector: SigV4TestSuite.Case) {
        let signer = SigV4Signer(service: vector.service, region: vector.region, options: vector.options)
        let request = SigV4Request(
            method: vector.request.method,
            path: vector.request.path,
            query: vector.request.query,
            headers: vector.request.headers,
            payloadHash: SigV4Signer.payloadHash(vector.request.body)
        )
        let details = signer.signWithDetails(request, credentials: vector.credentials, date: vector.date)
        #expect(details.canonicalRequest == vector.expectedCanonicalRequest)
        #expect(details.stringToSign == vector.expectedStringToSign)
        if let signature = vector.expectedSignature {
            #expect(details.signature.signature == signature)
        }
        if let authorization = vector.expectedAuthorization {
            #expect(details.signature.authorization == authorization)
        }
    }
}

@Suite("SigV4 signer")
struct SigV4SignerTests {
    let credentials = Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

    @Test func arnPathIsSignedEncodedOnceMore() {
        let wirePath = "/2015-03-31/functions/" + URIEncoding.encode("arn:aws:lambda:us-east-1:123456789012:function:my-fn:$LATEST") + "/invocations"
        #expect(wirePath == "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn%3A%24LATEST/invocations")
        let signer = SigV4Signer(service: "lambda", region: "us-east-1")
        let details = signer.signWithDetails(
            SigV4Request(method: "POST", path: wirePath, headers: [SigV4Header("host", "lambda.us-east-1.amazonaws.com")], payloadHash: SigV4Signer.payloadHash([])),
            credentials: credentials,
            date: Date(timeIntervalSince1970: 1_440_938_160)
        )
        #expect(details.canonicalRequest.contains("/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A123456789012%253Afunction%253Amy-fn%253A%2524LATEST/invocations\n"))
    }

    @Test func sessionTokenIsSignedAndAdded() {
        let signer = SigV4Signer(service: "lambda", region: "eu-west-1")
        var temporary = credentials
        temporary.sessionToken = "TOKEN"
        let signature = signer.sign(
            SigV4Request(method: "POST", path: "/", headers: [SigV4Header("Host", "h")], payloadHash: SigV4Signer.payloadHash([])),
            credentials: temporary,
            date: Date(timeIntervalSince1970: 1_440_938_160)
        )
        #expect(signature.signedHeaders == "host;x-amz-date;x-amz-security-token")
        #expect(signature.headersToAdd.map(\.name) == ["x-amz-date", "x-amz-security-token", "authorization"])
        #expect(signature.authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/lambda/aws4_request, "))
    }

    @Test func signingKeysAreCachedPerSecretDateRegionAndService() {
        let cache = SigningKeyCache()
        let signer = SigV4Signer(service: "lambda", region: "us-east-1", keyCache: cache)
        let request = SigV4Request(method: "POST", path: "/", headers: [], payloadHash: SigV4Signer.payloadHash([]))
        let day1 = Date(timeIntervalSince1970: 1_440_938_160)
        let first = signer.sign(request, credentials: credentials, date: day1)
        let again = signer.sign(request, credentials: credentials, date: day1.addingTimeInterval(1))
        #expect(first.signature != again.signature)  // the date differs, the key does not
        let nextDay = signer.sign(request, credentials: credentials, date: day1.addingTimeInterval(86_400))
        var rotated = credentials
        rotated.secretAccessKey = "other"
        let otherSecret = signer.sign(request, credentials: rotated, date: day1)
        #expect(nextDay.signature != first.signature && otherSecret.signature != first.signature)
        #expect(cache.cachedKeyCount == 3)
    }

    @Test func credentialsDescriptionHidesSecrets() {
        let secret = Credentials(accessKeyID: "AKID", secretAccessKey: "SECRET", sessionToken: "TOKEN", expiration: Date(timeIntervalSince1970: 0))
        #expect(!secret.description.contains("SECRET"))
        #expect(!secret.description.contains("TOKEN"))
        #expect(secret.description.contains("AKID"))
    }

    @Test(arguments: [
        (0.0, "19700101T000000Z"),
        (1_440_938_160, "20150830T123600Z"),
        (951_782_400, "20000229T000000Z"),
        (4_102_444_799, "20991231T235959Z"),
        (1_768_037_400.999, "20260110T093000Z"),
    ])
    func amzDateFormatting(seconds: Double, expected: String) {
        let date = AMZDate(Date(timeIntervalSince1970: seconds))
        #expect(date.timestamp == expected)
        #expect(date.day == String(expected.prefix(8)))
    }
}

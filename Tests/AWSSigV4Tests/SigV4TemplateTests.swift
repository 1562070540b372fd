import Foundation
import TestSupport
import Testing

@testable import AWSSigV4

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

    /// A template keeps, per second, the canonical request and string to sign up to their last
    /// hashes (`SignatureHeads`). Signatures in every order of dates, values, credentials, payloads
    /// and signers (regions) sharing one template are each the general signer's: a kept head used
    /// for inputs it was not made from would differ.
    @Test func keptHeadsNeverChangeASignature() {
        let path = "/2015-03-31/functions/my-fn/invocations"
        let fixed = [SigV4Header("host", "lambda.us-east-1.amazonaws.com"), SigV4Header("content-type", "application/json")]
        let signers = [SigV4Signer(service: "lambda", region: "us-east-1"), SigV4Signer(service: "lambda", region: "eu-west-1")]
        let template = signers[0].prepare(method: "POST", path: path, fixedHeaders: fixed, variableHeaderNames: ["x-amz-invocation-type"])
        let credentials = [
            Credentials(accessKeyID: "AKID", secretAccessKey: "secret-1"),
            Credentials(accessKeyID: "AKID", secretAccessKey: "secret-2"),
            Credentials(accessKeyID: "AKID2", secretAccessKey: "secret-1", sessionToken: "TOKEN-1"),
            Credentials(accessKeyID: "AKID2", secretAccessKey: "secret-1", sessionToken: "TOKEN-2"),
        ]
        let seconds: [Double] = [0, 0.5, 1, 59, 86_400]
        let types = ["RequestResponse", "Event", "DryRun", "RequestResponse", "Other", "Event"]
        var generator = SplitMix(seed: 7)
        var signed = 0
        for step in 0..<400 {
            let signer = signers[generator.next(below: 2)]
            let credential = credentials[generator.next(below: credentials.count)]
            let date = Date(timeIntervalSince1970: 1_768_037_400 + seconds[step / 80])
            let type = types[generator.next(below: types.count)]
            let payload = Array("{\"step\":\(step)}".utf8)
            let general = signer.sign(
                SigV4Request(method: "POST", path: path, headers: fixed + [SigV4Header("x-amz-invocation-type", type)], payloadHash: SigV4Signer.payloadHash(payload)),
                credentials: credential, date: date)
            let prepared = payload.withUnsafeBytes { signer.sign(template, value: type, payload: $0, credentials: credential, date: date) }
            #expect(prepared == general, "step \(step): \(type), \(credential.secretAccessKey), \(credential.sessionToken ?? "no token"), \(signer.region)")
            signed += prepared == general ? 1 : 0
        }
        #expect(signed == 400)
    }

    /// The heads are kept for the current second only, in one store per key cache: the first
    /// signature of a new second, of any template, drops the last second's, and the secrets in them.
    @Test func keptHeadsDoNotOutliveTheirSecond() {
        let keyCache = SigningKeyCache()
        let signer = SigV4Signer(service: "lambda", region: "us-east-1", keyCache: keyCache)
        let fixed = [SigV4Header("host", "lambda.us-east-1.amazonaws.com")]
        let first = signer.prepare(method: "POST", path: "/a", fixedHeaders: fixed, variableHeaderNames: ["x-amz-invocation-type"])
        let second = signer.prepare(method: "POST", path: "/b", fixedHeaders: fixed, variableHeaderNames: ["x-amz-invocation-type"])
        let start = Date(timeIntervalSince1970: 1_768_037_400)
        let payload = Array("{}".utf8)
        _ = payload.withUnsafeBytes {
            signer.sign(first, value: "Event", payload: $0, credentials: Credentials(accessKeyID: "AKID", secretAccessKey: "old-secret"), date: start)
        }
        #expect(keyCache.heads.keptSecrets == ["old-secret"])
        _ = payload.withUnsafeBytes {
            signer.sign(second, value: "Event", payload: $0, credentials: Credentials(accessKeyID: "AKID", secretAccessKey: "new-secret"), date: start + 1)
        }
        #expect(keyCache.heads.keptSecrets == ["new-secret"])
    }

    /// A template made for `x-amz-content-sha256` signs each payload's hash into that header even
    /// when the signer at hand would not add the header: no head is kept for it.
    @Test func aContentHashTemplateIsNeverSignedFromAKeptHead() {
        let keyCache = SigningKeyCache()
        let preparing = SigV4Signer(service: "s3", region: "us-east-1", options: SigV4Options(addContentSHA256Header: true), keyCache: keyCache)
        let signing = SigV4Signer(service: "s3", region: "us-east-1", keyCache: keyCache)
        let template = preparing.prepare(method: "PUT", path: "/k", fixedHeaders: [SigV4Header("host", "s3")], variableHeaderNames: [])
        let date = Date(timeIntervalSince1970: 1_768_037_400)
        let credentials = Credentials(accessKeyID: "AKID", secretAccessKey: "secret")
        let one = signing.sign(template, values: [], payloadHash: SigV4Signer.payloadHash(Array("1".utf8)), credentials: credentials, date: date)
        let two = signing.sign(template, values: [], payloadHash: SigV4Signer.payloadHash(Array("2".utf8)), credentials: credentials, date: date)
        #expect(one.signature != two.signature)
        #expect(keyCache.heads.keptSecrets.isEmpty)
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

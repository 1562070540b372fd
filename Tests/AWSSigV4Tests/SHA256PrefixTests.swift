import Crypto
import Testing

import struct Foundation.Date

@testable import AWSSigV4

@Suite("SHA-256 with a kept prefix")
struct SHA256PrefixTests {
    static func bytes(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ Int(seed)) }
    }

    /// Prefix and rest lengths around SHA-256's block (64 bytes) and its padding boundary (55/56):
    /// a message that opens with the prefix hashes as a whole message does.
    @Test(arguments: [0, 1, 55, 56, 63, 64, 65, 3000], [0, 1, 55, 56, 63, 64, 65, 1000])
    func aMessageOpeningWithThePrefixHashesAsWhole(prefixLength: Int, restLength: Int) {
        let prefix = Self.bytes(prefixLength)
        let message = prefix + Self.bytes(restLength, seed: 7)
        let kept = SHA256Prefix(prefix)
        message.withUnsafeBytes { message in
            #expect(kept.isPrefix(of: message))
            #expect(Array(kept.hash(message)) == Array(SHA256.hash(data: message)))
            // The kept state is not used up: a second message starts from it again.
            #expect(Array(kept.hash(message)) == Array(SHA256.hash(data: message)))
            // The hex hash for a payload hashed off the event loop, too.
            #expect(SigV4Signer.payloadHash(message, prefix: kept) == SigV4Signer.payloadHash(message))
            // A caller that has only what follows the prefix gets the same digest.
            #expect(Array(kept.hash(after: UnsafeRawBufferPointer(rebasing: message[prefixLength...]))) == Array(SHA256.hash(data: message)))
        }
    }

    /// A message that differs anywhere in the prefix, or is shorter than it, is hashed whole: a
    /// prefix never gives another message's digest.
    @Test(arguments: [0, 1, 63, 64, 2999])
    func aMessageThatDoesNotOpenWithThePrefixIsHashedWhole(changedByte: Int) {
        let prefix = Self.bytes(3000)
        var message = prefix + Self.bytes(500, seed: 9)
        message[changedByte] ^= 0x20
        let kept = SHA256Prefix(prefix)
        message.withUnsafeBytes { message in
            #expect(!kept.isPrefix(of: message))
            #expect(Array(kept.hash(message)) == Array(SHA256.hash(data: message)))
        }
        let short = Array(prefix.dropLast())
        short.withUnsafeBytes { short in
            #expect(!kept.isPrefix(of: short))
            #expect(Array(kept.hash(short)) == Array(SHA256.hash(data: short)))
        }
    }

    /// The signature of a payload that opens with the prefix is the signature of the payload.
    @Test func aTemplateSignatureWithThePrefixIsThePlainOne() {
        let signer = SigV4Signer(service: "lambda", region: "us-east-1")
        let template = signer.prepare(
            method: "POST", path: "/2015-03-31/functions/f/invocations", fixedHeaders: [SigV4Header("host", "lambda.us-east-1.amazonaws.com")],
            variableHeaderNames: ["x-amz-invocation-type"])
        let credentials = Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret")
        let prefix = Self.bytes(2000)
        let payload = prefix + Self.bytes(300, seed: 3)
        let date = Date(timeIntervalSince1970: 1_796_644_800)
        payload.withUnsafeBytes { payload in
            let plain = signer.sign(template, value: "RequestResponse", payload: payload, credentials: credentials, date: date)
            let prefixed = signer.sign(template, value: "RequestResponse", payload: payload, prefix: SHA256Prefix(prefix), credentials: credentials, date: date)
            #expect(prefixed.authorization == plain.authorization)
        }
    }
}

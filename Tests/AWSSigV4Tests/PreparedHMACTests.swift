import Crypto
import Testing

@testable import AWSSigV4

@Suite("Prepared HMAC-SHA256 and hex")
struct PreparedHMACTests {
    /// Key lengths around the 64-byte block (longer keys are hashed first) and message lengths
    /// around the padding boundaries of SHA-256 (55/56 bytes, one and two blocks).
    @Test(arguments: [0, 1, 32, 63, 64, 65, 200], [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000])
    func matchesSwiftCryptoHMAC(keyLength: Int, messageLength: Int) {
        let key = SymmetricKey(data: (0..<keyLength).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let message = (0..<messageLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let expected = HMAC<SHA256>.authenticationCode(for: message, using: key)
        let prepared = PreparedHMAC(key: key)
        let mac = message.withUnsafeBytes { prepared.authenticationCode(for: $0) }
        #expect(Array(mac) == Array(expected))
        // A prepared key is reused: the second MAC starts from the same absorbed key.
        let again = message.withUnsafeBytes { prepared.authenticationCode(for: $0) }
        #expect(Array(again) == Array(expected))
    }

    /// An opening absorbed once (`absorbing`), then each message's rest: the MAC of the whole.
    @Test(arguments: [0, 9, 63, 64, 73, 128], [0, 1, 55, 64, 100])
    func absorbedOpeningGivesTheWholeMessagesMAC(openingLength: Int, restLength: Int) {
        let key = SymmetricKey(data: Array("AWS4-signing-key-of-32-bytes....".utf8))
        let opening = (0..<openingLength).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let rest = (0..<restLength).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ 5) }
        let absorbed = opening.withUnsafeBytes { PreparedHMAC(key: key).absorbing($0) }
        for _ in 0..<2 {
            let mac = rest.withUnsafeBytes { absorbed.authenticationCode(for: $0) }
            #expect(Array(mac) == Array(HMAC<SHA256>.authenticationCode(for: opening + rest, using: key)))
        }
    }

    /// RFC 4231, test case 2.
    @Test func rfc4231TestCase2() {
        let prepared = PreparedHMAC(key: SymmetricKey(data: Array("Jefe".utf8)))
        let mac = Array("what do ya want for nothing?".utf8).withUnsafeBytes { prepared.authenticationCode(for: $0) }
        #expect(Hex.encode(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func hexEncodesEveryByteValue() {
        let bytes = (0...255).map(UInt8.init)
        var appended: [UInt8] = Array("x".utf8)
        Hex.append(bytes, to: &appended)
        let expected = "x" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        #expect(String(decoding: appended, as: UTF8.self) == expected)
        #expect(Hex.encode(bytes) == String(expected.dropFirst()))
    }
}

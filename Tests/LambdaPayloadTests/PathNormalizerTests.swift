import Testing

@testable import LambdaPayload

@Suite("Path normalization (RFC 3986 §6.2.2, §5.2.4)")
struct PathNormalizerTests {
    @Test(arguments: [
        ("/orders/42", "/orders/42"),
        ("/%6Frders", "/orders"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%2Fb", "/a%2Fb"),
        ("/a//b", "/a//b"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/../../x", "/x"),
        ("/", "/"),
        ("/%7euser", "/~user"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/admin/%2e%2e/orders", "/orders"),
    ])
    func normalizes(input: String, expected: String) throws {
        #expect(try PathNormalizer.normalize(input) == expected)
    }

    /// Found by FuzzHTTP1Head: decoding an unreserved escape right after a `%` that began no escape
    /// made a new escape, so the normalized path (what intentions matched) changed when decoded again.
    @Test(arguments: [
        ("/x%2Fy%7%41e", "/x%2Fy%7%41e"),
        ("/%%36%31dmin", "/%%361dmin"),
        ("/%4%31", "/%4%31"),
        ("/%%341", "/%%341"),
        ("/orders/%2E%2E/admtr-an1fr-eencodingin/%2e/./x%2Fy%7%41e", "/admtr-an1fr-eencodingin/x%2Fy%7%41e"),
        ("/%zz%41", "/%zzA"),
    ])
    func decodingNeverMakesANewEscape(input: String, expected: String) throws {
        let normalized = try PathNormalizer.normalize(input)
        #expect(normalized == expected)
        #expect(try PathNormalizer.normalize(normalized) == normalized)
    }

    @Test func nulBytesAndRelativePathsAreRejected() {
        #expect(throws: PathNormalizer.Failure.nulByte) { try PathNormalizer.normalize("/a%00b") }
        #expect(throws: PathNormalizer.Failure.notAbsolute) { try PathNormalizer.normalize("orders") }
    }

    /// The shortcut for paths with no `%` and no `/.` gives what the full normalization gives,
    /// for random paths over the bytes that matter.
    @Test func theShortcutAgreesWithTheFullNormalization() throws {
        let alphabet: [String] = ["/", "/", ".", "..", "%", "%2e", "%2F", "%41", "a", "b", "~", "-", "%%", "é"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let path = "/" + (0..<Int.random(in: 0...8, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }.joined()
            let full = try? PathNormalizer.normalizeFully(path)
            #expect((try? PathNormalizer.normalize(path)) == full, "\(path)")
            if PathNormalizer.isNormal(path) { #expect(full == path, "\(path)") }
        }
    }
}

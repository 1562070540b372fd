import LambdaPayload
import Testing

@Suite("Path normalization (mesh-identity.md §9.3)")
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

    @Test func nulBytesAndRelativePathsAreRejected() {
        #expect(throws: PathNormalizer.Failure.nulByte) { try PathNormalizer.normalize("/a%00b") }
        #expect(throws: PathNormalizer.Failure.notAbsolute) { try PathNormalizer.normalize("orders") }
    }
}

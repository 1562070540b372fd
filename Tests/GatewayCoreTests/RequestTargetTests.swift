import Testing

@testable import GatewayCore

@Suite("Request target split")
struct RequestTargetTests {
    /// Origin-form and absolute-form targets give the path and the raw query; a `://` inside an
    /// origin-form path or query is not a scheme.
    @Test(
        arguments: [
            ("/", "/", nil),
            ("/orders?id=1&x=2", "/orders", "id=1&x=2"),
            ("/orders?", "/orders", ""),
            ("/a://b", "/a://b", nil),
            ("/redirect?to=https://example.com/x", "/redirect", "to=https://example.com/x"),
            ("https://orders.example/p/q?x=1", "/p/q", "x=1"),
            ("http://orders.example", "/", nil),
            ("http://orders.example?x=1", "/", "x=1"),
            ("http://h:8080/p?q", "/p", "q"),
            ("*", "*", nil),
            // A `://` that does not follow a scheme at the very start is no absolute form: the target
            // stays as it is, and normalization refuses a path that does not start with `/`.
            ("a?u=http://h/admin", "a", "u=http://h/admin"),
            ("x/y://h/admin", "x/y://h/admin", nil),
            ("1http://h/admin", "1http://h/admin", nil),
            ("://h/admin", "://h/admin", nil),
            ("svc+h2.x-y://h/p", "/p", nil),
            ("http:/h/admin", "http:/h/admin", nil),
        ] as [(String, String, String?)])
    func targetSplitsIntoPathAndQuery(target: String, path: String, query: String?) {
        let (gotPath, gotQuery) = RequestProcessor.split(target: target)
        #expect(gotPath == path)
        #expect(gotQuery == query)
    }

    /// Throttled calls are sent again only for RFC 9110's idempotent methods, matched exactly
    /// (methods are case-sensitive).
    @Test(
        arguments: [
            ("GET", true), ("HEAD", true), ("OPTIONS", true), ("TRACE", true), ("PUT", true), ("DELETE", true),
            ("POST", false), ("PATCH", false), ("CONNECT", false), ("get", false), ("GETS", false), ("", false),
        ] as [(String, Bool)])
    func idempotentMethods(method: String, idempotent: Bool) {
        #expect(RequestProcessor.isIdempotent(method) == idempotent)
    }
}

import Foundation
import LambdaPayload
import NIOCore
import Testing

/// The example request the payload tests share (docs/COMPATIBILITY.md, Payload formats), as the gateway hands it to the codecs.
func specExampleRequest(body: String = #"{"qty": 2}"#) -> HTTPRequestView {
    HTTPRequestView(
        method: "POST",
        path: "/orders/42/items",
        query: "expand=true&expand=false&q=a%20b",
        headers: [
            HTTPField("Host", "orders"),
            HTTPField("Content-Type", "application/json; charset=utf-8"),
            HTTPField("Content-Length", "10"),
            HTTPField("Accept", "*/*"),
            HTTPField("X-Trace", "a"),
            HTTPField("X-Trace", "b"),
            HTTPField("Connection", "keep-alive"),
            HTTPField("x-forwarded-proto", "https"),
            HTTPField("x-request-id", "5f0c7d1e-8a0b-4b55-9b1e-2f8f2f5f6a01"),
        ],
        authority: "orders",
        body: ByteBuffer(string: body),
        protocolName: "HTTP/1.1",
        sourceIP: "10.0.3.17",
        receivedAt: Date(timeIntervalSince1970: 1_768_037_400)
    )
}

let ordersContext = PayloadContext(serviceName: "orders", accountID: "123456789012")

func encode(_ request: HTTPRequestView, _ format: PayloadFormat, passthrough: Bool = false) throws -> String {
    String(buffer: try RequestEncoder.encode(request, format: format, passthrough: passthrough, context: ordersContext))
}

func object(_ json: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
}

/// `json` with its objects' keys sorted: the same text for the same members in any order.
func sortedJSON(_ json: String) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: JSONSerialization.jsonObject(with: Data(json.utf8)), options: [.sortedKeys]), as: UTF8.self)
}

@Suite("Envoy request format")
struct EnvoyRequestFormatTests {
    @Test func specExampleIsEncodedExactly() throws {
        let json = try encode(specExampleRequest(), .envoy)
        #expect(
            json
                == #"{"raw_path":"/orders/42/items?expand=true&expand=false&q=a%20b","method":"POST","headers":{"accept":"*/*","content-length":"10","content-type":"application/json; charset=utf-8","x-forwarded-proto":"https","x-request-id":"5f0c7d1e-8a0b-4b55-9b1e-2f8f2f5f6a01","x-trace":"a,b"},"query_string_parameters":{"expand":"true","q":"a%20b"},"body":"{\"qty\": 2}","is_base64_encoded":false}"#
        )
    }

    /// A value escaped once for its connection (the mesh caller's `x-forwarded-client-cert`
    /// element) gives the same JSON as the plain value, in both formats. Alone under its name it
    /// leads: the payload opens with the headers object and that field, the bytes of
    /// `RequestEncoder.lead`, and the other fields follow in the usual order. Repeated, it is
    /// joined with the other values of its name as any field is, byte for byte as the plain value.
    @Test(arguments: [PayloadFormat.envoy, .apiGatewayV2])
    func preEscapedValuesEncodeAsPlainOnesAndLeadTheirPayload(format: PayloadFormat) throws {
        let element = #"By=spiffe://td/ns/default/dc/dc1/svc/orders;Cert="-----BEGIN%20CERT\"\#n\#u{01}";URI=spiffe://td/ns/default/dc/dc1/svc/web"#
        let lead = String(decoding: RequestEncoder.lead(name: "x-forwarded-client-cert", value: PreEscapedString(element)), as: UTF8.self)
        for extra in [[], [HTTPField("x-forwarded-client-cert", "By=earlier")]] {
            var plain = specExampleRequest()
            plain.headers += extra + [HTTPField("x-forwarded-client-cert", element), HTTPField("zz", "last")]
            var escapedOnce = specExampleRequest()
            escapedOnce.headers += extra + [HTTPField("X-Forwarded-Client-Cert", PreEscapedString(element)), HTTPField("zz", "last")]
            let expected = try encode(plain, format)
            let json = try encode(escapedOnce, format)
            #expect(try sortedJSON(json) == sortedJSON(expected))
            if extra.isEmpty {
                #expect(json.hasPrefix(lead + #","accept":"*/*","content-length":"10","#))
                #expect(!expected.hasPrefix(#"{"headers""#))
            } else {
                #expect(json == expected)
            }
            let headers = try object(expected)["headers"] as? [String: Any]
            #expect(headers?["x-forwarded-client-cert"] as? String == (extra.isEmpty ? element : "By=earlier," + element))
        }
        // A value changed afterwards is the value sent, not the one escaped beforehand.
        var changed = HTTPField("x-forwarded-client-cert", PreEscapedString(element))
        changed.value = "By=changed"
        var request = specExampleRequest()
        request.headers.append(changed)
        let json = try encode(request, format)
        let headers = try object(json)["headers"] as? [String: Any]
        #expect(headers?["x-forwarded-client-cert"] as? String == "By=changed")
        #expect(!json.hasPrefix(#"{"headers""#))
    }

    /// The lead of the gateway's own field is left out where the format leaves the field out: the
    /// payload keeps its usual order.
    @Test func aPreEscapedCookieDoesNotLeadTheV2Format() throws {
        var request = specExampleRequest()
        request.headers.append(HTTPField("Cookie", PreEscapedString("a=1")))
        let json = try encode(request, .apiGatewayV2)
        #expect(json.hasPrefix(#"{"version":"2.0""#))
        #expect(try encode(request, .envoy).hasPrefix(#"{"headers":{"cookie":"a=1","accept""#))
    }

    @Test func binaryBodyIsBase64AndFlagged() throws {
        var request = HTTPRequestView(method: "POST", path: "/img", headers: [HTTPField("content-type", "image/png")])
        request.body = ByteBuffer(bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let payload = try object(try encode(request, .envoy))
        #expect(payload["body"] as? String == "iVBORw0KGgo=")
        #expect(payload["is_base64_encoded"] as? Bool == true)
    }

    @Test func getWithoutBodyOrQuery() throws {
        let request = HTTPRequestView(method: "GET", path: "/health", headers: [HTTPField("host", "orders")])
        #expect(try encode(request, .envoy) == #"{"raw_path":"/health","method":"GET","headers":{},"query_string_parameters":{},"body":"","is_base64_encoded":false}"#)
    }

    @Test func targetWithEmptyQueryKeepsTheQuestionMark() throws {
        let request = HTTPRequestView(method: "GET", path: "/a", query: "")
        let payload = try object(try encode(request, .envoy))
        #expect(payload["raw_path"] as? String == "/a?")
        #expect((payload["query_string_parameters"] as? [String: Any])?.isEmpty == true)
    }

    @Test func queryRulesFirstWinsNoEqualsAndEmptyParts() throws {
        let request = HTTPRequestView(method: "GET", path: "/", query: "a=1&&flag&a=2&b=x+y&c=%2F")
        let params = try object(try encode(request, .envoy))["query_string_parameters"] as! [String: String]
        #expect(params == ["a": "1", "flag": "", "b": "x+y", "c": "%2F"])
    }

    @Test func cookiesJoinWithSemicolonAndHopByHopIsDropped() throws {
        let request = HTTPRequestView(
            method: "GET",
            path: "/",
            headers: [
                HTTPField("Cookie", "a=1"), HTTPField("cookie", "b=2"), HTTPField("TE", "trailers"),
                HTTPField("Transfer-Encoding", "chunked"), HTTPField(":authority", "x"), HTTPField("Upgrade", "h2c"),
            ]
        )
        let headers = try object(try encode(request, .envoy))["headers"] as! [String: String]
        #expect(headers == ["cookie": "a=1; b=2"])
    }

    @Test(arguments: [
        ("application/json; charset=utf-8", nil as String?, true),
        ("text/plain", nil, true),
        ("application/problem+json", nil, true),
        ("image/svg+xml", nil, true),
        ("application/x-www-form-urlencoded", nil, true),
        ("APPLICATION/JSON", "identity", true),
        ("application/json", "gzip", false),
        ("application/octet-stream", nil, false),
        ("", nil, false),
    ])
    func textDetection(contentType: String, encoding: String?, text: Bool) throws {
        var headers = [HTTPField("content-type", contentType)]
        if let encoding { headers.append(HTTPField("content-encoding", encoding)) }
        let request = HTTPRequestView(method: "POST", path: "/", headers: headers, body: ByteBuffer(string: "{\"a\":1}"))
        let payload = try object(try encode(request, .envoy))
        #expect(payload["is_base64_encoded"] as? Bool == !text)
        #expect(payload["body"] as? String == (text ? "{\"a\":1}" : "eyJhIjoxfQ=="))
    }

    @Test func invalidUTF8TextIsBase64() throws {
        let request = HTTPRequestView(
            method: "POST", path: "/", headers: [HTTPField("content-type", "text/plain")], body: ByteBuffer(bytes: [0x66, 0xFF, 0x6F])
        )
        let payload = try object(try encode(request, .envoy))
        #expect(payload["is_base64_encoded"] as? Bool == true)
        #expect(payload["body"] as? String == "Zv9v")
    }

    @Test func controlCharactersAndUnicodeAreEscapedValidJSON() throws {
        let body = "line1\nline2\t\"quoted\" \\ \u{01} é 😀"
        let request = HTTPRequestView(method: "POST", path: "/", headers: [HTTPField("content-type", "text/plain")], body: ByteBuffer(string: body))
        let json = try encode(request, .envoy)
        #expect(json.contains(#""body":"line1\nline2\t\"quoted\" \\ \u0001 é 😀""#))
        #expect(try object(json)["body"] as? String == body)
    }
}

@Suite("API Gateway v2 request format")
struct APIGatewayV2RequestFormatTests {
    @Test func specExampleFields() throws {
        let payload = try object(try encode(specExampleRequest(), .apiGatewayV2))
        #expect(payload["version"] as? String == "2.0")
        #expect(payload["routeKey"] as? String == "$default")
        #expect(payload["rawPath"] as? String == "/orders/42/items")
        #expect(payload["rawQueryString"] as? String == "expand=true&expand=false&q=a%20b")
        #expect(payload["cookies"] == nil)
        #expect(
            payload["headers"] as? [String: String]
                == [
                    "accept": "*/*", "content-length": "10", "content-type": "application/json; charset=utf-8", "host": "orders",
                    "x-forwarded-proto": "https", "x-request-id": "5f0c7d1e-8a0b-4b55-9b1e-2f8f2f5f6a01", "x-trace": "a,b",
                ]
        )
        #expect(payload["queryStringParameters"] as? [String: String] == ["expand": "true,false", "q": "a b"])
        #expect(payload["body"] as? String == #"{"qty": 2}"#)
        #expect(payload["isBase64Encoded"] as? Bool == false)
        let context = payload["requestContext"] as! [String: Any]
        #expect(context["accountId"] as? String == "123456789012")
        #expect(context["apiId"] as? String == "orders")
        #expect(context["authentication"] is NSNull)
        #expect(context["authorizer"] is NSNull)
        #expect(context["domainName"] as? String == "orders")
        #expect(context["domainPrefix"] as? String == "orders")
        #expect(context["requestId"] as? String == "5f0c7d1e-8a0b-4b55-9b1e-2f8f2f5f6a01")
        #expect(context["stage"] as? String == "$default")
        #expect(context["time"] as? String == "10/Jan/2026:09:30:00 +0000")
        #expect(context["timeEpoch"] as? Int == 1_768_037_400_000)
        #expect(
            context["http"] as? [String: String]
                == ["method": "POST", "path": "/orders/42/items", "protocol": "HTTP/1.1", "sourceIp": "10.0.3.17", "userAgent": ""]
        )
    }

    @Test func cookiesMoveToTheirOwnArrayAndBodyIsOmittedWhenEmpty() throws {
        let request = HTTPRequestView(
            method: "GET",
            path: "/",
            headers: [HTTPField("cookie", "a=1; b=2;"), HTTPField("Cookie", " c=3"), HTTPField("user-agent", "curl/8")],
            authority: "web.example.com:8443"
        )
        let payload = try object(try encode(request, .apiGatewayV2))
        #expect(payload["cookies"] as? [String] == ["a=1", "b=2", "c=3"])
        #expect((payload["headers"] as! [String: String])["cookie"] == nil)
        #expect((payload["headers"] as! [String: String])["host"] == "web.example.com:8443")
        #expect(payload["body"] == nil)
        #expect(payload["queryStringParameters"] == nil)
        let context = payload["requestContext"] as! [String: Any]
        #expect(context["domainName"] as? String == "web.example.com")
        #expect(context["domainPrefix"] as? String == "web")
        #expect((context["http"] as! [String: String])["userAgent"] == "curl/8")
    }
}

@Suite("Passthrough")
struct PassthroughTests {
    @Test func jsonBodyIsSentByteForByte() throws {
        let request = HTTPRequestView(method: "POST", path: "/", body: ByteBuffer(string: " {\"a\": [1, 2]} "))
        #expect(try encode(request, .envoy, passthrough: true) == " {\"a\": [1, 2]} ")
    }

    @Test func emptyBodyIsAllowed() throws {
        #expect(try encode(HTTPRequestView(method: "GET", path: "/"), .envoy, passthrough: true) == "")
    }

    @Test func nonJSONBodyIsRejectedBeforeAnyCall() {
        let request = HTTPRequestView(method: "POST", path: "/", body: ByteBuffer(string: "name=value"))
        #expect(throws: PayloadError.self) { try encode(request, .envoy, passthrough: true) }
        do {
            _ = try encode(request, .envoy, passthrough: true)
        } catch let error as PayloadError {
            #expect(error.code == .invalidRequestContent)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}

import AWSSigV4
import Foundation
import Testing

/// Reads the official SigV4 suites from `../shared/testdata/sigv4` (never copied into this project).
enum SigV4TestSuite {
    struct Case: CustomTestStringConvertible, Sendable {
        var suite: String
        var name: String
        var request: ParsedRequest
        var credentials: Credentials
        var region: String
        var service: String
        var date: Date
        var options: SigV4Options
        var expectedCanonicalRequest: String
        var expectedStringToSign: String
        /// The signature alone (aws-c-auth) or the whole `Authorization` value (botocore).
        var expectedSignature: String?
        var expectedAuthorization: String?

        var testDescription: String { "\(suite)/\(name)" }
    }

    struct ParsedRequest: Sendable {
        var method: String
        var path: String
        var query: String
        var headers: [SigV4Header]
        var body: [UInt8]
    }

    /// `../shared/testdata/sigv4`, or `$LAMBDA_GATEWAY_SHARED_DIR/testdata/sigv4`.
    static var root: URL {
        if let shared = ProcessInfo.processInfo.environment["LAMBDA_GATEWAY_SHARED_DIR"] {
            return URL(fileURLWithPath: shared).appendingPathComponent("testdata/sigv4")
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // AWSSigV4Tests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
            .deletingLastPathComponent()  // its parent, beside which shared/ lives
            .appendingPathComponent("shared/testdata/sigv4")
    }

    static var rootExists: Bool {
        FileManager.default.fileExists(atPath: root.appendingPathComponent("README.md").path)
    }

    static func directories(in url: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.sorted().map { url.appendingPathComponent($0) }.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: $0.path, isDirectory: &isDirectory) && isDirectory.boolValue
        }
    }

    static func text(_ url: URL) throws -> String {
        try String(contentsOf: url, encoding: .utf8)
    }

    // MARK: aws-c-auth layout (also lambda-invoke/)

    static func cAuthCases(folder: String) -> [Case] {
        let base = root.appendingPathComponent(folder)
        return directories(in: base).compactMap { directory in
            try? cAuthCase(directory, suite: folder)
        }
    }

    static func cAuthCase(_ directory: URL, suite: String) throws -> Case {
        var json = try text(directory.appendingPathComponent("context.json"))
        // One upstream context.json has a trailing comma; be as lenient as aws-c-auth's own parser.
        json = json.replacingOccurrences(of: #",\s*\}"#, with: "}", options: .regularExpression)
        let context = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let credentialsJSON = context["credentials"] as! [String: Any]
        let credentials = Credentials(
            accessKeyID: credentialsJSON["access_key_id"] as! String,
            secretAccessKey: credentialsJSON["secret_access_key"] as! String,
            sessionToken: credentialsJSON["token"] as? String
        )
        let signBody = context["sign_body"] as? Bool ?? false
        let addHeader = context["add_x_amz_content_sha256_header"] as? Bool ?? signBody
        let options = SigV4Options(
            normalizePath: context["normalize"] as? Bool ?? true,
            signSessionToken: !(context["omit_session_token"] as? Bool ?? false),
            addContentSHA256Header: addHeader
        )
        let date = ISO8601DateFormatter().date(from: context["timestamp"] as! String)!
        return Case(
            suite: suite,
            name: directory.lastPathComponent,
            request: try parseRequest(Array(try Data(contentsOf: directory.appendingPathComponent("request.txt")))),
            credentials: credentials,
            region: context["region"] as! String,
            service: context["service"] as! String,
            date: date,
            options: options,
            expectedCanonicalRequest: try text(directory.appendingPathComponent("header-canonical-request.txt")),
            expectedStringToSign: try text(directory.appendingPathComponent("header-string-to-sign.txt")),
            expectedSignature: try text(directory.appendingPathComponent("header-signature.txt")),
            expectedAuthorization: nil
        )
    }

    // MARK: botocore aws4_testsuite layout

    static func botocoreCases() -> [Case] {
        let base = root.appendingPathComponent("botocore/aws4_testsuite")
        var cases: [Case] = []
        var pending = directories(in: base)
        while let directory = pending.first {
            pending.removeFirst()
            let name = directory.lastPathComponent
            let request = directory.appendingPathComponent("\(name).req")
            if FileManager.default.fileExists(atPath: request.path) {
                if let loaded = try? botocoreCase(directory, name: name) { cases.append(loaded) }
            } else {
                pending.append(contentsOf: directories(in: directory))
            }
        }
        return cases
    }

    static func botocoreCase(_ directory: URL, name: String) throws -> Case {
        func file(_ ext: String) throws -> String { try text(directory.appendingPathComponent("\(name).\(ext)")) }
        var request = try parseRequest(Array(try Data(contentsOf: directory.appendingPathComponent("\(name).req"))))
        // The signer adds x-amz-date and x-amz-security-token itself: take them out of the input.
        // The token is the one the signed request carries; whether it is signed shows in the .creq.
        let signed = try parseRequest(Array(try Data(contentsOf: directory.appendingPathComponent("\(name).sreq"))))
        let token = signed.headers.first { $0.name.lowercased() == "x-amz-security-token" }?.value
        let expectedCanonicalRequest = try file("creq")
        request.headers.removeAll { ["x-amz-date", "x-amz-security-token"].contains($0.name.lowercased()) }
        let relative = directory.path.replacingOccurrences(of: root.path + "/botocore/aws4_testsuite/", with: "")
        return Case(
            suite: "botocore",
            name: relative,
            request: request,
            credentials: Credentials(
                accessKeyID: "AKIDEXAMPLE",
                secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                sessionToken: token
            ),
            region: "us-east-1",
            service: "service",
            date: Date(timeIntervalSince1970: 1_440_938_160),  // 20150830T123600Z, every case's X-Amz-Date
            options: SigV4Options(
                normalizePath: true,
                signSessionToken: expectedCanonicalRequest.contains("\nx-amz-security-token:")
            ),
            expectedCanonicalRequest: expectedCanonicalRequest,
            expectedStringToSign: try file("sts"),
            expectedSignature: nil,
            expectedAuthorization: try file("authz")
        )
    }

    // MARK: Raw request parsing

    /// Parses a suite's raw HTTP/1.1 request; header continuation lines are folded with `\n`.
    static func parseRequest(_ bytes: [UInt8]) throws -> ParsedRequest {
        let text = String(decoding: bytes, as: UTF8.self)
        let headEnd = text.range(of: "\n\n")
        let head = headEnd.map { String(text[..<$0.lowerBound]) } ?? text
        let body = headEnd.map { Array(text[$0.upperBound...].utf8) } ?? []
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst()
        let firstSpace = requestLine.firstIndex(of: " ")!
        let lastSpace = requestLine.lastIndex(of: " ")!
        let method = String(requestLine[..<firstSpace])
        let target = String(requestLine[requestLine.index(after: firstSpace)..<lastSpace])
        let path: String
        let query: String
        if let question = target.firstIndex(of: "?") {
            path = String(target[..<question])
            query = String(target[target.index(after: question)...])
        } else {
            path = target
            query = ""
        }
        var headers: [SigV4Header] = []
        for line in lines where !line.isEmpty {
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].value += "\n" + line
                continue
            }
            let colon = line.firstIndex(of: ":")!
            headers.append(SigV4Header(String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
        return ParsedRequest(method: method, path: path, query: query, headers: headers, body: body)
    }
}

import AsyncHTTPClient
import Foundation
import LambdaPayload
import NIOCore
import NIOHTTP1

/// Lambda's Extensions API (AWS Lambda Extensions API reference) at `http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension`.
public struct ExtensionsAPIClient: Sendable {
    let baseURL: String
    let http: HTTPClient

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// What the platform answers to `register`.
    public struct Registration: Sendable, Hashable {
        public var identifier: String
        public var functionName: String
        public var functionVersion: String
    }

    /// An event of `GET /event/next`.
    public enum Event: Sendable, Hashable {
        case invoke(requestID: String, deadlineMs: Int64)
        case shutdown(reason: String, deadlineMs: Int64)
    }

    /// The error types of `/init/error` and `/exit/error` (docs/DECISIONS.md D67).
    public enum ErrorType: String, Sendable {
        case configInvalid = "Extension.ConfigInvalid"
        case dataUnavailable = "Extension.DataUnavailable"
        case listenerFailed = "Extension.ListenerFailed"
        case runtimeFailure = "Extension.RuntimeFailure"
    }

    public init(runtimeAPI: String, http: HTTPClient) {
        baseURL = "http://\(runtimeAPI)/2020-01-01/extension"
        self.http = http
    }

    /// `POST /register` for `INVOKE` and `SHUTDOWN` (docs/DECISIONS.md D70: the reference takes only
    /// `SHUTDOWN`, so it never sees an invocation to refresh stale data on). `name` must equal the
    /// executable's file name.
    public func register(name: String) async throws(Failure) -> Registration {
        let (status, headers, body) = try await send(.POST, "/register", headers: [("Lambda-Extension-Name", name)], body: #"{"events":["INVOKE","SHUTDOWN"]}"#)
        guard status == .ok else { throw Failure(description: "register answered \(status.code): \(Self.text(body))") }
        guard let identifier = headers.first(name: "Lambda-Extension-Identifier"), !identifier.isEmpty else {
            throw Failure(description: "register answered without a Lambda-Extension-Identifier")
        }
        let json = try? JSONParser.parse(body)
        func string(_ key: String) -> String {
            if case .string(let text)? = json?[key] { return text }
            return ""
        }
        return Registration(identifier: identifier, functionName: string("functionName"), functionVersion: string("functionVersion"))
    }

    /// `GET /event/next`: blocks until the next event, without a timeout (the environment may be
    /// frozen for as long as the platform likes).
    public func next(identifier: String) async throws(Failure) -> Event {
        let (status, _, body) = try await send(.GET, "/event/next", headers: [("Lambda-Extension-Identifier", identifier)], body: nil)
        guard status == .ok else { throw Failure(description: "event/next answered \(status.code): \(Self.text(body))") }
        guard let json = try? JSONParser.parse(body), case .string(let type)? = json["eventType"] else {
            throw Failure(description: "event/next answered an event without eventType: \(Self.text(body))")
        }
        let deadline: Int64
        if case .number(let number)? = json["deadlineMs"] { deadline = Int64(number) ?? 0 } else { deadline = 0 }
        switch type {
        case "INVOKE":
            var requestID = ""
            if case .string(let text)? = json["requestId"] { requestID = text }
            return .invoke(requestID: requestID, deadlineMs: deadline)
        case "SHUTDOWN":
            var reason = ""
            if case .string(let text)? = json["shutdownReason"] { reason = text }
            return .shutdown(reason: reason, deadlineMs: deadline)
        default:
            throw Failure(description: "event/next answered an unknown event type \(type)")
        }
    }

    /// `POST /init/error` (during Init) and `POST /exit/error` (after): the platform then ends the
    /// environment; the caller exits 1.
    public func reportError(identifier: String, type: ErrorType, message: String, duringInit: Bool) async throws(Failure) {
        let report = JSONValue.object([
            JSONMember("errorMessage", .string(message)), JSONMember("errorType", .string(type.rawValue)), JSONMember("stackTrace", .array([])),
        ])
        let path = duringInit ? "/init/error" : "/exit/error"
        let (status, _, body) = try await send(
            .POST, path,
            headers: [("Lambda-Extension-Identifier", identifier), ("Lambda-Extension-Function-Error-Type", type.rawValue)],
            body: report.jsonText
        )
        guard (200..<300).contains(status.code) else { throw Failure(description: "\(path) answered \(status.code): \(Self.text(body))") }
    }

    func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)], body: String?) async throws(Failure) -> (HTTPResponseStatus, HTTPHeaders, [UInt8]) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        do {
            // No deadline: `event/next` waits while the environment is frozen.
            let response = try await http.execute(request, deadline: .distantFuture)
            let buffer = try await response.body.collect(upTo: 1 << 20)
            return (response.status, response.headers, Array(buffer.readableBytesView))
        } catch {
            throw Failure(description: "\(method) \(path): \(error)")
        }
    }

    static func text(_ body: [UInt8]) -> String {
        String(decoding: body.prefix(300), as: UTF8.self)
    }
}

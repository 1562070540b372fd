import Foundation
import NIOConcurrencyHelpers

/// Lambda's Extensions API (AWS Lambda Extensions API reference) on 127.0.0.1, driven by the test: `register`
/// answers an identifier, `event/next` waits until the test sends an event, `init/error` and
/// `exit/error` answer 202. Every request is recorded with its time.
public final class ExtensionsAPIStandIn: Sendable {
    public let server: TestHTTPServer
    private let queue: EventQueue
    public static let identifier = "ext-0123456789"

    actor EventQueue {
        var events: [String] = []
        var waiters: [CheckedContinuation<String, Never>] = []

        func push(_ event: String) {
            if waiters.isEmpty { events.append(event) } else { waiters.removeFirst().resume(returning: event) }
        }

        func next() async -> String {
            if !events.isEmpty { return events.removeFirst() }
            return await withCheckedContinuation { waiters.append($0) }
        }
    }

    public init() async throws {
        let queue = EventQueue()
        self.queue = queue
        server = try await TestHTTPServer { request in
            switch (request.method, request.path) {
            case ("POST", "/2020-01-01/extension/register"):
                guard request.header("Lambda-Extension-Name")?.isEmpty == false else {
                    return ScriptedResponse(status: 400, json: #"{"errorMessage":"no Lambda-Extension-Name","errorType":"InvalidRequest"}"#)
                }
                return ScriptedResponse(
                    status: 200, headers: [("Lambda-Extension-Identifier", Self.identifier)],
                    json: #"{"functionName":"caller","functionVersion":"$LATEST","handler":"bootstrap"}"#
                )
            case ("GET", "/2020-01-01/extension/event/next"):
                guard request.header("Lambda-Extension-Identifier") == Self.identifier else {
                    return ScriptedResponse(status: 403, json: #"{"errorMessage":"unknown extension identifier","errorType":"Extension.Unknown"}"#)
                }
                return ScriptedResponse(status: 200, headers: [("Lambda-Extension-Event-Identifier", UUID().uuidString)], json: await queue.next())
            case ("POST", "/2020-01-01/extension/init/error"), ("POST", "/2020-01-01/extension/exit/error"):
                return ScriptedResponse(status: 202, json: #"{"status":"OK"}"#)
            default:
                return ScriptedResponse(status: 404, json: #"{"errorMessage":"not found"}"#)
            }
        }
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the extension.
    public var runtimeAPI: String { "127.0.0.1:\(server.port)" }

    public var requests: [RecordedRequest] { server.requests }

    public func sendInvoke(requestID: String = UUID().uuidString, deadline: Date = Date().addingTimeInterval(30)) async {
        await queue.push(
            #"{"eventType":"INVOKE","deadlineMs":\#(Int64(deadline.timeIntervalSince1970 * 1000)),"requestId":"\#(requestID)","invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:caller","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5759e988-bd862e3fe1be46a994272793"}}"#
        )
    }

    public func sendShutdown(reason: String = "spindown", deadline: Date) async {
        await queue.push(#"{"eventType":"SHUTDOWN","shutdownReason":"\#(reason)","deadlineMs":\#(Int64(deadline.timeIntervalSince1970 * 1000))}"#)
    }

    /// The first request to `path` (`/register`, `/event/next`, ...), waiting for it.
    public func waitForRequest(_ path: String, timeout: Duration = .seconds(30)) async throws -> RecordedRequest {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let request = requests.first(where: { $0.path == "/2020-01-01/extension" + path }) { return request }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestSupportError("no request to \(path) within \(timeout); requests: \(requests.map(\.path))")
    }

    public func requests(to path: String) -> [RecordedRequest] {
        requests.filter { $0.path == "/2020-01-01/extension" + path }
    }

    public func shutdown() async {
        // A pending event/next would hold the server: give it a SHUTDOWN first.
        await queue.push(#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":0}"#)
        await server.shutdown()
    }
}

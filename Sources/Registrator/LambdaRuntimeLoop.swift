import AsyncHTTPClient
import Foundation
import LambdaPayload
import Logging
import NIOCore
import NIOHTTP1

/// The registrator as a Lambda custom runtime: the Runtime API loop
/// (`$AWS_LAMBDA_RUNTIME_API`, https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).
/// Setup runs once per execution environment; a setup failure is posted to `/runtime/init/error`.
public struct LambdaRuntimeLoop: Sendable {
    let baseURL: String
    let http: HTTPClient
    let logger: Logger

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(runtimeAPI: String, http: HTTPClient, logger: Logger) {
        baseURL = "http://\(runtimeAPI)/2018-06-01/runtime"
        self.http = http
        self.logger = logger
    }

    /// Sets up with `setup`, then answers invocations until the runtime stops the process. Returns
    /// (with the error) only when setup failed, after reporting it.
    public func run(setup: () async throws -> RegistratorEnvironment) async throws {
        let environment: RegistratorEnvironment
        do {
            environment = try await setup()
        } catch {
            try? await post("/init/error", body: Self.errorBody(error, type: "Runtime.InitError"), errorType: "Runtime.InitError")
            throw error
        }
        defer { Task { await environment.shutdown() } }
        while !Task.isCancelled {
            let (requestID, event) = try await next()
            do {
                let report = try await handle(event, with: environment.registrator)
                try await post("/invocation/\(requestID)/response", body: report.json)
            } catch {
                logger.error("invocation failed", metadata: ["requestId": "\(requestID)", "error": "\(error)"])
                try await post("/invocation/\(requestID)/error", body: Self.errorBody(error, type: "Registrator.Error"), errorType: "Registrator.Error")
            }
        }
    }

    /// An event the registrator cannot take, or a run that failed as a whole, fails the invocation
    /// (EventBridge then retries it); per-function errors are in the answer.
    func handle(_ event: [UInt8], with registrator: Registrator) async throws -> SyncReport {
        let parsed: RegistratorEvent
        do {
            parsed = try RegistratorEvent(json: event)
        } catch {
            throw Failure(description: error.message)
        }
        let report = await registrator.handle(parsed)
        logger.info("\(report.summary)")
        if report.failed { throw Failure(description: report.summary) }
        return report
    }

    func next() async throws -> (String, [UInt8]) {
        var request = HTTPClientRequest(url: baseURL + "/invocation/next")
        request.method = .GET
        // The runtime holds this request until an invocation arrives: no deadline.
        let response = try await http.execute(request, timeout: .hours(24 * 365))
        let body = try await response.body.collect(upTo: 6 << 20)
        guard response.status == .ok, let id = response.headers.first(name: "Lambda-Runtime-Aws-Request-Id") else {
            throw Failure(description: "the Runtime API answered \(response.status.code) without a request id")
        }
        return (id, Array(body.readableBytesView))
    }

    func post(_ path: String, body: String, errorType: String? = nil) async throws {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let errorType { request.headers.add(name: "Lambda-Runtime-Function-Error-Type", value: errorType) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await http.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw Failure(description: "the Runtime API answered \(response.status.code) to \(path)")
        }
    }

    static func errorBody(_ error: any Error, type: String) -> String {
        JSONValue.object([JSONMember("errorMessage", .string("\(error)")), JSONMember("errorType", .string(type))]).jsonText
    }
}

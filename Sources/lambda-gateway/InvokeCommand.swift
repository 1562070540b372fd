import AWSCredentials
import ArgumentParser
import Foundation
import LambdaInvoke
import LambdaPayload
import Logging
import NIOCore
import NIOPosix

/// `lambda-gateway invoke`: one signed Invoke call, to check credentials and reachability.
struct InvokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoke",
        abstract: "Invoke a Lambda function once with the gateway's signer, credentials and client.",
        discussion: """
            Credentials come from the standard chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the shared \
            credentials file (AWS_PROFILE), web identity, container or instance metadata. The function's \
            result is printed on standard output; the exit status is 1 for an AWS or local error and 2 \
            when the function itself failed.
            """
    )

    @Argument(help: "The function ARN, e.g. arn:aws:lambda:us-east-1:123456789012:function:orders[:alias].")
    var functionARN: String

    @Option(name: .long, help: "The JSON payload, or @FILE to read it from a file.")
    var data: String = "{}"

    @Flag(name: .customLong("async"), help: "Invoke asynchronously (InvocationType Event); success is 202.")
    var asynchronous = false

    @Option(name: .long, help: "Send the call to this endpoint instead of the ARN's region (https://host[:port], http:// for tests). Also AWS_ENDPOINT_URL_LAMBDA.")
    var endpoint: String?

    @Option(name: .customLong("ca-file"), help: "Extra trust anchors for the endpoint's certificate (PEM or DER).")
    var caFile: String?

    @Flag(name: .customLong("name-in-path"), help: "Put the function's name, not its ARN, in the request path (the Invoke API accepts both; some emulators only check signatures for names).")
    var nameInPath = false

    @Option(name: .long, help: "Give up after this many seconds, more than 0 and at most a day (default: 15).", transform: InvokeCommand.seconds)
    var timeout: Duration = .seconds(15)

    @Flag(name: .long, help: "Log the credential provider and the request.")
    var verbose = false

    /// `--timeout`: a number of seconds as the flag has always taken it (`15`, `0.5`), checked once
    /// here. ArgumentParser names the flag and the value in the error.
    static func seconds(_ text: String) throws -> Duration {
        guard let seconds = Double(text), seconds.isFinite, seconds > 0, seconds <= 86_400 else {
            throw ValidationError("expected a number of seconds more than 0 and at most 86400")
        }
        return .seconds(seconds)
    }

    func run() async throws {
        var logger = Logger(label: "lambda-gateway")
        logger.logLevel = verbose ? .debug : .warning
        let arn: FunctionARN
        do {
            arn = try FunctionARN(parsing: functionARN)
        } catch {
            throw ValidationError(error.description)
        }
        let payload = try readPayload()

        let aws = try AWSSide(endpoint: endpoint, caFile: caFile, caFileSetting: "--ca-file", group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let outcome: Result<LambdaInvocationResult, LambdaInvokeError>
        do {
            var request = InvokeRequest(
                function: arn,
                payload: ByteBuffer(bytes: payload),
                invocationType: asynchronous ? .event : .requestResponse,
                timeout: timeout
            )
            if nameInPath { request.functionIdentifier = arn.functionName }
            let result = try await aws.invoker.invoke(request)
            outcome = .success(result)
        } catch {
            outcome = .failure(error)
        }
        await aws.shutdown()

        switch outcome {
        case .success(let result):
            FileHandle.standardOutput.write(Data(result.payload.readableBytesView))
            if result.payload.readableBytes > 0 { FileHandle.standardOutput.write(Data("\n".utf8)) }
            var status = "status \(result.statusCode)"
            if let requestID = result.requestID { status += ", request id \(requestID)" }
            if let functionError = result.functionError {
                printError("function error (\(functionError)); \(status)")
                throw ExitCode(2)
            }
            if verbose { printError(status) }
        case .failure(let error):
            printError("error: \(error.errorName): \(error.message)")
            if error.isAuthenticationFailure {
                printError("hint: AWS rejected the credentials; check the key, its secret, the clock, and the IAM policy (lambda:InvokeFunction).")
            }
            throw ExitCode(1)
        }
    }

    func readPayload() throws -> [UInt8] {
        guard data.hasPrefix("@") else { return Array(data.utf8) }
        let path = String(data.dropFirst())
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read payload file \(path)")
        }
        return Array(contents)
    }

    func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

import Foundation
import NIOConcurrencyHelpers

/// A long-running child process (the gateway under test) whose output lines are collected as they come.
public final class RunningProcess: Sendable {
    private let process: Process
    private let lines = NIOLockedValueBox<[String]>([])
    private let partial = NIOLockedValueBox<String>("")

    public var pid: Int32 { process.processIdentifier }
    public var output: [String] { lines.withLockedValue { $0 } }

    public init(_ arguments: [String], environment: [String: String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        self.process = process
        let lines = self.lines
        let partial = self.partial
        pipe.fileHandleForReading.readabilityHandler = { handle in
            // One read(2) of what is there, retried on EINTR. Not `availableData` (Foundation's
            // `try!` inside it crashes the whole test run on EINTR, as happens on a loaded machine),
            // nor `read(upToCount:)` (it waits for the count or end of file).
            var buffer = [UInt8](repeating: 0, count: 65536)
            var count: Int
            repeat {
                count = buffer.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
            } while count < 0 && errno == EINTR
            guard count > 0 else { return }
            let data = Data(buffer[0..<count])
            partial.withLockedValue { text in
                text += String(decoding: data, as: UTF8.self)
                while let newline = text.firstIndex(of: "\n") {
                    let line = String(text[..<newline])
                    text = String(text[text.index(after: newline)...])
                    lines.withLockedValue { $0.append(line) }
                }
            }
        }
        try process.run()
    }

    /// Waits for an output line containing `text` and returns it.
    public func waitForLine(containing text: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = output.first(where: { $0.contains(text) }) { return line }
            guard process.isRunning else { throw TestSupportError("process exited (\(process.terminationStatus)) before printing \"\(text)\":\n\(output.joined(separator: "\n"))") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSupportError("no line containing \"\(text)\" within \(timeout):\n\(output.joined(separator: "\n"))")
    }

    public func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits for the process to end; `nil` when it is still running after `timeout`.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Ends the process for good (SIGKILL, which a child of the test runner cannot block).
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

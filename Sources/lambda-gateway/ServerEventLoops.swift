import Foundation
import NIOCore
import NIOPosix

/// The event loops of the serving commands (`run`, `dev`).
///
/// By default Swift concurrency runs on them too: NIO's singleton group is installed as the global
/// executor before any task starts, so the async part of a request (the Invoke call, the
/// verification of a client certificate) stays on the loop threads instead of hopping to Swift's
/// cooperative pool and back. On the benchmark's one pinned core that is 13% more requests per
/// second for 12% less CPU per request (BENCHMARKS.md). `LAMBDA_GATEWAY_EXECUTOR=swift` keeps
/// Swift's own executor.
enum ServerEventLoops {
    static let servingCommands: Set<String> = ["run", "dev"]

    /// Whether the loops also run Swift concurrency. Evaluated once, first thing in `main`.
    static let shared: Bool = install(arguments: CommandLine.arguments, environment: ProcessInfo.processInfo.environment)

    static func install(arguments: [String], environment: [String: String]) -> Bool {
        guard arguments.count > 1, servingCommands.contains(arguments[1]), environment["LAMBDA_GATEWAY_EXECUTOR"] != "swift" else { return false }
        // The group is made now, before the arguments are parsed: read `--event-loops` ahead.
        NIOSingletons.groupLoopCountSuggestion = eventLoops(in: arguments) ?? System.coreCount
        return NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    /// `--event-loops N` or `--event-loops=N`; an invalid value is left to the argument parser.
    static func eventLoops(in arguments: [String]) -> Int? {
        for (index, argument) in arguments.enumerated() {
            if argument == "--event-loops", index + 1 < arguments.count { return Int(arguments[index + 1]).flatMap { $0 > 0 ? $0 : nil } }
            if argument.hasPrefix("--event-loops=") { return Int(argument.dropFirst("--event-loops=".count)).flatMap { $0 > 0 ? $0 : nil } }
        }
        return nil
    }

    /// The group a serving command uses: the shared singleton, or its own.
    static func make(eventLoops: Int?) -> MultiThreadedEventLoopGroup {
        shared ? .singleton : MultiThreadedEventLoopGroup(numberOfThreads: eventLoops ?? System.coreCount)
    }

    /// Stops a group from `make`; the shared singleton lives as long as the process.
    static func shutdown(_ group: MultiThreadedEventLoopGroup) async {
        guard !shared else { return }
        try? await group.shutdownGracefully()
    }
}

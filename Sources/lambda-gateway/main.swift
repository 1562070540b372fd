import Dispatch

// A synchronous entry point: the main thread waits on a semaphore while the command runs as a task.
// An async `main` parks the main thread in `dispatchMain()`, where valgrind 3.19 crashes, and the
// shipped binary must run under `valgrind --tool=callgrind` (BENCHMARKS.md, issue 19).

// Before any task runs: the serving commands run Swift concurrency on their event loops.
_ = ServerEventLoops.shared
let finished = DispatchSemaphore(value: 0)
let arguments = CommandLine.arguments
Task.detached {
    await LambdaGateway.run(arguments: arguments)
    finished.signal()
}
finished.wait()

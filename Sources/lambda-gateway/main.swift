import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

// A synchronous entry point: the main thread waits on a semaphore while the command runs as a task.
// An async `main` parks the main thread in `dispatchMain()`, where valgrind 3.19 crashes, and the
// shipped binary must run under `valgrind --tool=callgrind` (BENCHMARKS.md, issue 19).

// A write to a pipe whose reader went away (an access log to a FIFO, stdout piped to a pager that
// quit) fails with EPIPE instead of ending the process.
signal(SIGPIPE, SIG_IGN)
// Before any task runs: the serving commands run Swift concurrency on their event loops.
_ = ServerEventLoops.shared
let finished = DispatchSemaphore(value: 0)
let arguments = CommandLine.arguments
Task.detached {
    await LambdaGateway.run(arguments: arguments)
    finished.signal()
}
finished.wait()

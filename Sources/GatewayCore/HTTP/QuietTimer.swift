import NIOCore

/// Fires once `timeout` has passed since the last `touch`: a body that stops arriving. One task is
/// scheduled at a time and moved only when it comes due early, so bytes that keep arriving cost a
/// clock read each, not a timer each. Used on one event loop only.
final class QuietTimer {
    let timeout: TimeAmount
    private var task: Scheduled<Void>?
    private var lastTouch = NIODeadline.now()

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    /// Something arrived; starts the timer if it is not running. `expired` runs on `eventLoop`.
    func touch(on eventLoop: any EventLoop, expired: @escaping () -> Void) {
        lastTouch = .now()
        if task == nil { schedule(in: timeout, on: eventLoop, expired: expired) }
    }

    func cancel() {
        task?.cancel()
        task = nil
    }

    private func schedule(in delay: TimeAmount, on eventLoop: any EventLoop, expired: @escaping () -> Void) {
        task = eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            task = nil
            let quiet = NIODeadline.now() - lastTouch
            if quiet >= timeout {
                expired()
            } else {
                schedule(in: timeout - quiet, on: eventLoop, expired: expired)
            }
        }
    }
}

/// A request's link back to its caller, on the connection's event loop: the handler cancels it when
/// the caller goes away (the connection closes, or its HTTP/2 stream is reset) before the answer is
/// written, and whoever waits on a Lambda call for it (a streamed call before its first byte) stops.
final class RequestCancellation: @unchecked Sendable {
    // @unchecked: used on the connection's event loop only.
    private var handlers: [() -> Void] = []
    private(set) var isCancelled = false

    /// `handler` runs once when the request is cancelled (at once if it was).
    func onCancel(_ handler: @escaping () -> Void) {
        if isCancelled {
            handler()
        } else {
            handlers.append(handler)
        }
    }

    func cancel() {
        guard !isCancelled else { return }
        isCancelled = true
        let handlers = self.handlers
        self.handlers = []
        for handler in handlers { handler() }
    }
}

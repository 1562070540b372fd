import LambdaPayload
import NIOHTTP1

/// Whether a request ends its connection after its answer, from its head's `Connection` options
/// and whether it asks for an `Upgrade`: read as NIO's `HTTPHeaders.isKeepAlive(version:)` and
/// `contains(name: "upgrade")` read them (tested against them). `close` ends the connection,
/// `keep-alive` keeps it, both (or either twice) end it, and with neither HTTP/1.1 stays open and
/// HTTP/1.0 closes. An `Upgrade` ends it too: the parser stops after such a request, which is
/// answered as a plain one.
///
/// Byte by byte, where NIO's look-up split each value into `String`s a character at a time: a
/// client that sends `Connection: keep-alive` on every request (`ab` does) paid for that twice a
/// request, in the parser and in the reader's checks. The one difference: a list is split at its
/// comma bytes (RFC 9110 §5.6.1), where NIO did not split at a comma that a combining mark
/// follows (one character to `String`): `close,` and a combining mark holds `close` here.
struct ConnectionOptions {
    private var close = false
    private var keepAlive = false
    private var upgrade = false

    init() {}

    /// Takes a `Connection` field's value.
    mutating func readConnection(_ value: UnsafeRawBufferPointer) {
        HTTP1Syntax.forEachToken(value) { token in
            if HTTP1Syntax.equalsLowercased(token, "close") {
                close = true
            } else if HTTP1Syntax.equalsLowercased(token, "keep-alive") {
                // A second keep-alive is as bad as a close to NIO.
                if keepAlive { close = true }
                keepAlive = true
            }
        }
    }

    mutating func readConnection(_ value: String) {
        value.withUTF8Bytes { readConnection($0) }
    }

    /// The head has an `Upgrade` field.
    mutating func sawUpgrade() {
        upgrade = true
    }

    func endsConnection(version: HTTPVersion) -> Bool {
        if upgrade || close { return true }
        if keepAlive { return false }
        return !(version.major == 1 && version.minor >= 1)
    }
}

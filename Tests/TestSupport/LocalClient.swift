import Foundation

/// A plain blocking TCP client of a listener on 127.0.0.1 (the extension's, as a function's code
/// connects to it), with a 10 s receive timeout and, when given, a small receive buffer (a slow
/// reader).
public struct LocalClient {
    public let fd: Int32

    public init(port: Int, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw TestSupportError("connect to 127.0.0.1:\(port) failed: errno \(code)")
        }
    }

    public func send(_ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Reads until `count` bytes or end of stream (or the 10 s receive timeout).
    public func read(count: Int) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < count {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, count - bytes.count)) }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Everything until the peer ends the stream (a FIN, or a reset: a socket closed with the
    /// function's bytes unread resets); `nil` when it did not end within the timeout.
    public func readToEnd() -> String? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 || (n < 0 && errno == ECONNRESET) { return String(decoding: bytes, as: UTF8.self) }
            if n < 0 { return nil }
            bytes += buffer[0..<n]
        }
    }

    public func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }
    public func close() { Glibc.close(fd) }
}

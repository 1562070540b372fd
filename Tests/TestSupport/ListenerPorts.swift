import Foundation

/// Ports for a process under test that must be told its listening port in advance (the extension's
/// `CONSUL_SERVICE_UPSTREAMS`). They come from 20000-29999, outside Linux's ephemeral range
/// (32768-60999) that port-0 binds draw from: a port found free by binding port 0 and closing
/// (as `MotoServer.freePort` does) can be taken meanwhile by another test's bind to port 0, and two
/// suites running side by side once gave moto's port to an extension listener.
public enum ListenerPorts {
    /// A port in 20000-29999 that 127.0.0.1 can bind right now.
    public static func free() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20000..<30000)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
        throw TestSupportError("no free port in 20000-29999 after 200 tries")
    }
}

import LambdaInvoke
import NIOCore
import NIOSSL

extension AccessLogConnection {
    /// `ip:port` as Envoy writes addresses (`[ip]:port` for IPv6); nil for none.
    static func address(_ address: SocketAddress?) -> String? {
        address?.envoyText
    }

    /// `TLSv1.2`, `TLSv1.3` (Envoy's `%DOWNSTREAM_TLS_VERSION%`).
    static func name(_ version: TLSVersion) -> String {
        switch version {
        case .tlsv1: "TLSv1"
        case .tlsv11: "TLSv1.1"
        case .tlsv12: "TLSv1.2"
        case .tlsv13: "TLSv1.3"
        }
    }
}

import Foundation
import Logging
import MeshIdentity
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// Terminates mesh mTLS (mesh-identity.md §5): reads the ClientHello's SNI, refuses unknown names
/// before any certificate is sent, presents the service's own leaf, and requires a client
/// certificate from the mesh CA carrying a service identity of the trust domain.
public struct MeshTLSAcceptor: Sendable {
    public typealias Established = @Sendable (Channel, ClientConnection) -> EventLoopFuture<Void>

    let store: SnapshotStore
    let contexts: ServiceTLSContexts
    let metrics: GatewayMetrics
    let logger: Logger
    let handshakeTimeout: TimeAmount

    public init(store: SnapshotStore, contexts: ServiceTLSContexts = ServiceTLSContexts(), metrics: GatewayMetrics = GatewayMetrics(), logger: Logger, handshakeTimeout: TimeAmount = .seconds(10)) {
        self.store = store
        self.contexts = contexts
        self.metrics = metrics
        self.logger = logger
        self.handshakeTimeout = handshakeTimeout
    }

    /// Installs the handshake handlers on a new child channel; `established` builds the rest of the
    /// pipeline once the caller is authenticated.
    public func configure(_ channel: Channel, established: @escaping Established) -> EventLoopFuture<Void> {
        let metrics = self.metrics
        let timeout = channel.eventLoop.scheduleTask(in: handshakeTimeout) {
            metrics.handshakeFailed(.timeout)
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in timeout.cancel() }
        let acceptor = self
        let sni = ByteToMessageHandler(
            SNIHandler { result in
                acceptor.selectService(result, channel: channel, timeout: timeout, established: established)
            }
        )
        return channel.pipeline.addHandler(sni)
    }

    private func selectService(_ result: SNIResult, channel: Channel, timeout: Scheduled<Void>, established: @escaping Established) -> EventLoopFuture<Void> {
        let snapshot = store.snapshot
        guard case .hostname(let name) = result else {
            metrics.handshakeFailed(.missingSNI)
            logger.debug("TLS handshake refused: no SNI")
            return channel.close()
        }
        guard let service = snapshot.service(forSNI: name) else {
            metrics.handshakeFailed(.unknownSNI)
            logger.info("TLS handshake refused: no served service for SNI", metadata: ["sni": "\(name)"])
            return channel.close()
        }
        let context: NIOSSLContext
        do {
            context = try contexts.context(for: service, tls: snapshot.incomingTLS)
        } catch {
            logger.error("cannot use the leaf certificate", metadata: ["service": "\(service.name)", "error": "\(error)"])
            return channel.close()
        }
        let verifier = contexts.verifier(for: snapshot)
        let identity = IdentityBox()
        let metrics = self.metrics
        let logger = self.logger
        let tls = NIOSSLServerHandler(context: context, customVerificationCallbackWithMetadata: { chain, promise in
            promise.completeWithTask {
                guard let certificates = ClientCertificateVerifier.certificates(chain) else {
                    identity.failureCounted = true
                    metrics.handshakeFailed(.clientCertificate(.malformed))
                    return .failed
                }
                switch await verifier.verify(certificates) {
                case .success(let caller):
                    identity.caller = caller
                    identity.forwardedClientCert = ForwardedClientCert.element(presentedURI: service.leaf.serviceURI, clientChain: certificates)
                    return .certificateVerified(VerificationMetadata(nil))
                case .failure(let reason):
                    identity.failureCounted = true
                    metrics.handshakeFailed(.clientCertificate(reason))
                    logger.info("TLS handshake refused: client certificate", metadata: ["service": "\(service.name)", "reason": "\(reason.rawValue)"])
                    return .failed
                }
            }
        })
        let completion = HandshakeCompletion(onFailure: { error in
            // A refused certificate is counted by its reason, above; count the rest once.
            guard !identity.failureCounted && identity.caller == nil else { return }
            identity.failureCounted = true
            // BoringSSL refuses a missing client certificate itself, before the callback runs.
            let missing = String(describing: error).contains("PEER_DID_NOT_RETURN_A_CERTIFICATE")
            metrics.handshakeFailed(missing ? .clientCertificate(.missing) : .tlsError)
        }) { negotiated in
            timeout.cancel()
            guard let caller = identity.caller else { return channel.close() }
            let connection = ClientConnection(
                serviceName: service.name,
                caller: .mesh(caller, forwardedClientCert: identity.forwardedClientCert),
                negotiatedProtocol: negotiated,
                peerIP: channel.remoteAddress?.ipAddress ?? ""
            )
            return established(channel, connection)
        }
        return channel.pipeline.addHandlers([tls, completion])
    }
}

/// Written by the verification callback, read after the handshake, both on the channel's event loop.
final class IdentityBox: @unchecked Sendable {
    // @unchecked: the callback's promise completes on the channel's event loop before the handshake
    // completes, and the handshake-completed event is delivered on the same loop.
    var caller: SPIFFEID?
    var forwardedClientCert = ""
    /// This handshake's failure is counted already (a refused certificate, or a first TLS error).
    var failureCounted = false
}

/// Waits for the TLS handshake, then lets the caller build the application pipeline.
final class HandshakeCompletion: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let onFailure: @Sendable (any Error) -> Void
    let onComplete: @Sendable (String?) -> EventLoopFuture<Void>

    init(onFailure: @escaping @Sendable (any Error) -> Void, onComplete: @escaping @Sendable (String?) -> EventLoopFuture<Void>) {
        self.onFailure = onFailure
        self.onComplete = onComplete
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        onFailure(error)
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            let handler = self
            let pipeline = context.pipeline
            onComplete(negotiated).whenComplete { _ in
                pipeline.removeHandler(handler, promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

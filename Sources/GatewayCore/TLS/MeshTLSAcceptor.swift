import Atomics
import Foundation
import Logging
import MeshIdentity
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// Counts refused handshakes by reason, for `/metrics`.
public final class TLSRefusals: Sendable {
    public let unknownSNI = ManagedAtomic<Int>(0)
    public let missingSNI = ManagedAtomic<Int>(0)
    public let clientCertificate: [ClientCertificateRejection: ManagedAtomic<Int>] =
        Dictionary(uniqueKeysWithValues: ClientCertificateRejection.allCases.map { ($0, ManagedAtomic<Int>(0)) })

    public init() {}
}

/// Terminates mesh mTLS (mesh-identity.md §5): reads the ClientHello's SNI, refuses unknown names
/// before any certificate is sent, presents the service's own leaf, and requires a client
/// certificate from the mesh CA carrying a service identity of the trust domain.
public struct MeshTLSAcceptor: Sendable {
    public typealias Established = @Sendable (Channel, ClientConnection) -> EventLoopFuture<Void>

    let store: SnapshotStore
    let contexts: ServiceTLSContexts
    let refusals: TLSRefusals
    let logger: Logger
    let handshakeTimeout: TimeAmount

    public init(store: SnapshotStore, contexts: ServiceTLSContexts = ServiceTLSContexts(), refusals: TLSRefusals = TLSRefusals(), logger: Logger, handshakeTimeout: TimeAmount = .seconds(10)) {
        self.store = store
        self.contexts = contexts
        self.refusals = refusals
        self.logger = logger
        self.handshakeTimeout = handshakeTimeout
    }

    /// Installs the handshake handlers on a new child channel; `established` builds the rest of the
    /// pipeline once the caller is authenticated.
    public func configure(_ channel: Channel, established: @escaping Established) -> EventLoopFuture<Void> {
        let timeout = channel.eventLoop.scheduleTask(in: handshakeTimeout) { channel.close(promise: nil) }
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
            refusals.missingSNI.wrappingIncrement(ordering: .relaxed)
            logger.debug("TLS handshake refused: no SNI")
            return channel.close()
        }
        guard let service = snapshot.service(forSNI: name) else {
            refusals.unknownSNI.wrappingIncrement(ordering: .relaxed)
            logger.info("TLS handshake refused: no served service for SNI", metadata: ["sni": "\(name)"])
            return channel.close()
        }
        let context: NIOSSLContext
        do {
            context = try contexts.context(for: service)
        } catch {
            logger.error("cannot use the leaf certificate", metadata: ["service": "\(service.name)", "error": "\(error)"])
            return channel.close()
        }
        let verifier = contexts.verifier(for: snapshot)
        let identity = IdentityBox()
        let refusals = self.refusals
        let logger = self.logger
        let tls = NIOSSLServerHandler(context: context, customVerificationCallbackWithMetadata: { chain, promise in
            promise.completeWithTask {
                guard let certificates = ClientCertificateVerifier.certificates(chain) else {
                    refusals.clientCertificate[.malformed]?.wrappingIncrement(ordering: .relaxed)
                    return .failed
                }
                switch await verifier.verify(certificates) {
                case .success(let caller):
                    identity.caller = caller
                    identity.forwardedClientCert = ForwardedClientCert.element(presentedURI: service.leaf.serviceURI, clientChain: certificates)
                    return .certificateVerified(VerificationMetadata(nil))
                case .failure(let reason):
                    refusals.clientCertificate[reason]?.wrappingIncrement(ordering: .relaxed)
                    logger.info("TLS handshake refused: client certificate", metadata: ["service": "\(service.name)", "reason": "\(reason.rawValue)"])
                    return .failed
                }
            }
        })
        let completion = HandshakeCompletion { negotiated in
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
}

/// Waits for the TLS handshake, then lets the caller build the application pipeline.
final class HandshakeCompletion: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let onComplete: @Sendable (String?) -> EventLoopFuture<Void>

    init(onComplete: @escaping @Sendable (String?) -> EventLoopFuture<Void>) {
        self.onComplete = onComplete
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

import Foundation
import LambdaPayload
import Logging
import MeshIdentity
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// Terminates mesh mTLS (docs/ARCHITECTURE.md, Accept and TLS): reads the ClientHello's SNI, refuses unknown names
/// before any certificate is sent, presents the service's own leaf, and requires a client
/// certificate from the mesh CA carrying a service identity of the trust domain.
public struct MeshTLSAcceptor: Sendable {
    public typealias Established = @Sendable (Channel, ClientConnection) -> EventLoopFuture<Void>

    let store: SnapshotStore
    let contexts: ServiceTLSContexts
    let metrics: GatewayMetrics
    let logger: Logger
    let handshakeTimeout: TimeAmount
    /// Refusals happen before the peer is authenticated: their lines are rate-limited.
    let unknownSNILog: RateLimitedLog
    let missingSNILog: RateLimitedLog
    let refusedCertificateLog: RateLimitedLog
    /// Listener lines (flag `NR`) for connections refused before any request.
    let accessLog: AccessLog?

    /// `refusalLogWindow`: refused handshakes are logged one by one only a few times per window,
    /// then summed up.
    public init(
        store: SnapshotStore, contexts: ServiceTLSContexts = ServiceTLSContexts(), metrics: GatewayMetrics = GatewayMetrics(), accessLog: AccessLog? = nil, logger: Logger,
        handshakeTimeout: TimeAmount = .seconds(10), refusalLogWindow: TimeAmount = .seconds(10)
    ) {
        self.store = store
        self.accessLog = accessLog
        self.contexts = contexts
        self.metrics = metrics
        self.logger = logger
        self.handshakeTimeout = handshakeTimeout
        self.unknownSNILog = RateLimitedLog("TLS handshake refused: no served service for SNI", window: refusalLogWindow, logger: logger)
        self.missingSNILog = RateLimitedLog("TLS handshake refused: no SNI", level: .debug, window: refusalLogWindow, logger: logger)
        self.refusedCertificateLog = RateLimitedLog("TLS handshake refused: client certificate", window: refusalLogWindow, logger: logger)
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
            missingSNILog.record(sample: "\(channel.remoteAddress.map { "\($0)" } ?? "?")", metadata: [:], on: channel.eventLoop)
            accessLog?.recordRefusedConnection(on: channel, sni: nil, details: ResponseCodeDetails.filterChainNotFound)
            return channel.close()
        }
        guard let service = snapshot.service(forSNI: name) else {
            metrics.handshakeFailed(.unknownSNI)
            let sni = LogSafe.text(name)
            unknownSNILog.record(sample: sni, metadata: ["sni": "\(sni)"], on: channel.eventLoop)
            accessLog?.recordRefusedConnection(on: channel, sni: name, details: ResponseCodeDetails.filterChainNotFound)
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
        let refusedCertificateLog = self.refusedCertificateLog
        let accessLog = self.accessLog
        /// Verifies the caller's chain against this snapshot's roots; records who it is, or why not.
        @Sendable func authenticate(_ chain: [NIOSSLCertificate]) async -> Bool {
            guard let certificates = ClientCertificateVerifier.certificates(chain) else {
                identity.failureCounted = true
                metrics.handshakeFailed(.clientCertificate(.malformed))
                accessLog?.recordRefusedConnection(on: channel, sni: name, details: ResponseCodeDetails.certificateRefused(ClientCertificateRejection.malformed.rawValue))
                return false
            }
            switch await verifier.verify(certificates) {
            case .success(let caller):
                identity.caller = caller
                identity.subject = certificates.first.map { "\($0.subject)" }
                identity.forwardedClientCert = ForwardedClientCert.element(presentedURI: service.leaf.serviceURI, clientChain: certificates)
                return true
            case .failure(let reason):
                identity.failureCounted = true
                metrics.handshakeFailed(.clientCertificate(reason))
                refusedCertificateLog.record(sample: "\(service.name): \(reason.rawValue)", metadata: ["service": "\(service.name)", "reason": "\(reason.rawValue)"], on: channel.eventLoop)
                accessLog?.recordRefusedConnection(on: channel, sni: name, details: ResponseCodeDetails.certificateRefused(reason.rawValue))
                return false
            }
        }
        let tls = NIOSSLServerHandler(
            context: context,
            customVerificationCallbackWithMetadata: { chain, promise in
                promise.completeWithTask { await authenticate(chain) ? .certificateVerified(VerificationMetadata(nil)) : .failed }
            })
        let completion = HandshakeCompletion(onFailure: { error in
            // A refused certificate is counted by its reason, above; count the rest once.
            guard !identity.failureCounted && identity.caller == nil else { return }
            identity.failureCounted = true
            // BoringSSL refuses a missing client certificate itself, before the callback runs.
            let missing = String(describing: error).contains("PEER_DID_NOT_RETURN_A_CERTIFICATE")
            metrics.handshakeFailed(missing ? .clientCertificate(.missing) : .tlsError)
            if missing {
                accessLog?.recordRefusedConnection(on: channel, sni: name, details: ResponseCodeDetails.certificateRefused(ClientCertificateRejection.missing.rawValue))
            }
        }) { negotiated in
            timeout.cancel()
            @Sendable func proceed() -> EventLoopFuture<Void> {
                guard let caller = identity.caller else { return channel.close() }
                let tlsVersion = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).tlsVersion
                let connection = ClientConnection(
                    serviceName: service.key,
                    caller: .mesh(caller, forwardedClientCert: PreEscapedString(identity.forwardedClientCert)),
                    negotiatedProtocol: negotiated,
                    peerIP: channel.remoteAddress?.ipAddress ?? "",
                    accessLog: AccessLogConnection(
                        localAddress: AccessLogConnection.address(channel.localAddress), remoteAddress: AccessLogConnection.address(channel.remoteAddress),
                        requestedServerName: name, peerURISAN: caller.description, peerSubject: identity.subject, tlsVersion: tlsVersion.map(AccessLogConnection.name)
                    )
                )
                return established(channel, connection)
            }
            guard identity.caller == nil && !identity.failureCounted else { return proceed() }
            // A resumed session, TLS 1.2 or 1.3 (NIOSSL cannot turn resumption off; Envoy sidecars
            // resume sessions): BoringSSL skipped the callback, so check the certificate the session
            // restored against the current roots now. Only the leaf is restored: a caller whose
            // chain needs intermediates must make a full handshake.
            let leaf = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
            guard let leaf else {
                identity.failureCounted = true
                metrics.handshakeFailed(.clientCertificate(.missing))
                return channel.close()
            }
            let verified = channel.eventLoop.makePromise(of: Bool.self)
            verified.completeWithTask { await authenticate([leaf]) }
            return verified.futureResult.flatMap { _ in proceed() }
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
    /// The caller certificate's subject, for the access log.
    var subject: String?
    /// This handshake's failure is counted already (a refused certificate, or a first TLS error).
    var failureCounted = false
}

/// Waits for the TLS handshake, then lets the caller build the application pipeline. Bytes that
/// arrive before that pipeline is in place (a resumed session is checked asynchronously, after the
/// handshake) are held and handed to it.
final class HandshakeCompletion: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: the mutable state is touched on the channel's event loop only.
    typealias InboundIn = ByteBuffer
    let onFailure: @Sendable (any Error) -> Void
    let onComplete: @Sendable (String?) -> EventLoopFuture<Void>
    private var holding = false
    private var held: [NIOAny] = []

    init(onFailure: @escaping @Sendable (any Error) -> Void, onComplete: @escaping @Sendable (String?) -> EventLoopFuture<Void>) {
        self.onFailure = onFailure
        self.onComplete = onComplete
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        onFailure(error)
        context.fireErrorCaught(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if holding { held.append(data) } else { context.fireChannelRead(data) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            holding = true
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            onComplete(negotiated).hop(to: context.eventLoop).whenComplete { _ in
                let (handler, context) = bound.value
                handler.holding = false
                let held = handler.held
                handler.held = []
                for data in held { context.fireChannelRead(data) }
                if !held.isEmpty { context.fireChannelReadComplete() }
                context.pipeline.syncOperations.removeHandler(handler, promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

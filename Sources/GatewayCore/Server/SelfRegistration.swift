import ConsulAPI
import Logging
import ServiceLifecycle

/// `--register agent`: registers the gateway in the local Consul agent once its listener is bound,
/// retrying with backoff; checks every `recheck` that the agent still has it (an agent restarted
/// without its data dir forgets services) and registers again when not; deregisters on graceful
/// shutdown. Ordered before the listener in the service group, so it deregisters after the
/// listener has stopped accepting (docs/ARCHITECTURE.md, Start and shutdown).
public final class SelfRegistration: Service, Sendable {
    let client: ConsulClient
    let template: GatewayRegistration
    let boundPort: AsyncStream<Int>
    let recheck: Duration
    let logger: Logger

    /// `template.port` is replaced by the first value of `boundPort` (the listener's real port).
    public init(client: ConsulClient, template: GatewayRegistration, boundPort: AsyncStream<Int>, recheck: Duration = .seconds(10), logger: Logger) {
        self.client = client
        self.template = template
        self.boundPort = boundPort
        self.recheck = recheck
        self.logger = logger
    }

    public func run() async throws {
        // The loop returns what may be registered when graceful shutdown cancels it: a registration
        // whose answer was cut off by the shutdown may have reached the agent, so it counts.
        let active: GatewayRegistration? =
            (try? await cancelWhenGracefulShutdown { () async -> GatewayRegistration? in
                var ports = self.boundPort.makeAsyncIterator()
                guard let port = await ports.next() else { return nil }
                var registration = self.template
                var registered = false
                var sent = false
                registration.port = port
                var backoff = Duration.milliseconds(500)
                while !Task.isCancelled {
                    do {
                        if !registered {
                            sent = true
                            try await self.client.register(registration)
                            registered = true
                            backoff = .milliseconds(500)
                            self.logger.notice("registered in the local Consul agent", metadata: ["id": "\(registration.id)", "address": "\(registration.hostPort)"])
                        } else if try await !self.client.agentHasService(id: registration.id) {
                            self.logger.warning("the Consul agent no longer has this gateway; registering again", metadata: ["id": "\(registration.id)"])
                            registered = false
                            continue
                        }
                        try await Task.sleep(for: self.recheck)
                    } catch is CancellationError {
                        break
                    } catch {
                        self.logger.warning("self-registration failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(backoff)"])
                        try? await Task.sleep(for: backoff)
                        backoff = min(backoff * 2, .seconds(30))
                    }
                }
                return sent ? registration : nil
            }) ?? nil
        guard let registration = active else { return }
        do {
            try await client.deregister(registration)
            logger.notice("deregistered from the local Consul agent", metadata: ["id": "\(registration.id)"])
        } catch  where error.code == .status(404) {
            logger.debug("the agent did not have this gateway; nothing to deregister")
        } catch {
            logger.warning("deregistration failed; the agent's TCP check will mark this instance critical", metadata: ["error": "\(error)"])
        }
    }
}

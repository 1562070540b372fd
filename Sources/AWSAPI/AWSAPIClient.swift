import AWSCredentials
import AWSSigV4
import Foundation
import LambdaInvoke
import Logging
import NIOCore
import Synchronization

/// The AWS control-plane calls of the registrator (and the Lambda extension): signed with the
/// project's SigV4 signer, sent over one `PooledHTTPClient`, AWS error answers parsed, throttling,
/// 5xx answers and requests that never left retried with backoff (`AWSRetryPolicy`).
public final class AWSAPIClient: Sendable {
    public let configuration: AWSServiceConfiguration
    let http: PooledHTTPClient
    let credentials: any CredentialSource
    let logger: Logger
    let now: @Sendable () -> Date
    let retryPolicy: AWSRetryPolicy
    let lambdaService: AWSService
    let ssmService: AWSService
    /// HTTP requests sent per operation, retries included.
    private let counts = Mutex<[String: Int]>([:])
    /// The largest answer read: a ListFunctions page of 50 full configurations is well under it.
    static let maximumResponseBytes = 16 * 1024 * 1024

    public init(
        configuration: AWSServiceConfiguration,
        credentials: any CredentialSource,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init
    ) throws(AWSAPIError) {
        guard configuration.maximumAttempts >= 1 else {
            throw AWSAPIError(.invalidRequest, "maximumAttempts must be at least 1, not \(configuration.maximumAttempts)")
        }
        // The fields are mutable after `AWSServiceConfiguration.init`: checked again here.
        try AWSServiceConfiguration.checkRegion(configuration.region, setting: "region")
        let keyCache = SigningKeyCache()
        lambdaService = AWSService(
            name: "Lambda",
            endpoint: try ServiceEndpoint(configuration.lambdaEndpoint, setting: "Lambda endpoint URL"),
            signer: SigV4Signer(service: "lambda", region: configuration.region, keyCache: keyCache)
        )
        ssmService = AWSService(
            name: "SSM",
            endpoint: try ServiceEndpoint(configuration.ssmEndpoint, setting: "SSM endpoint URL"),
            signer: SigV4Signer(service: "ssm", region: configuration.region, keyCache: keyCache)
        )
        do {
            http = try PooledHTTPClient(
                caFile: configuration.caFile,
                caFileSetting: "AWS_CA_BUNDLE",
                eventLoopGroup: eventLoopGroup,
                maximumConnectionsPerHost: configuration.maximumConnectionsPerHost,
                connectTimeout: configuration.connectTimeout
            )
        } catch {
            throw AWSAPIError(.invalidRequest, "cannot set up TLS for the AWS endpoints: \(error)")
        }
        self.configuration = configuration
        self.credentials = credentials
        self.logger = logger
        self.now = now
        self.retryPolicy = AWSRetryPolicy(maximumAttempts: configuration.maximumAttempts, maximumBackoff: configuration.maximumBackoff)
    }

    /// Closes the pooled connections; calls in flight fail.
    public func shutdown() async {
        await http.shutdown()
    }

    public var lambda: LambdaControlClient { LambdaControlClient(client: self) }
    public var ssm: SSMClient { SSMClient(client: self) }

    /// How many HTTP requests were sent (retries included), per operation name ("ListTags", ...).
    public func callCounts() -> [String: Int] {
        counts.withLock { $0 }
    }

    func countRequest(_ operation: String) {
        counts.withLock { $0[operation, default: 0] += 1 }
    }
}

/// One AWS service as the client reaches it.
struct AWSService: Sendable {
    /// For messages: "Lambda", "SSM".
    var name: String
    var endpoint: ServiceEndpoint
    var signer: SigV4Signer
}

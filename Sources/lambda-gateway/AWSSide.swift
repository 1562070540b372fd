import AWSCredentials
import AWSSigV4
import AsyncHTTPClient
import Foundation
import LambdaInvoke
import Logging
import NIOCore

/// The AWS half every command needs: the credential chain behind its cache (or fixed credentials,
/// as dev mode's embedded endpoint uses), and the Invoke client.
struct AWSSide {
    let metadataClient: HTTPClient
    let credentials: CredentialCache
    let invoker: LambdaInvokeClient
    /// Whether `credentials` is in use (and must be refreshed in the background).
    let usesCredentialChain: Bool

    /// `caFileSetting` is the flag that named `caFile`, for errors about the file.
    init(endpoint: String?, caFile: String?, caFileSetting: String, group: any EventLoopGroup, logger: Logger, fixedCredentials: Credentials? = nil) throws {
        let environment = ProcessInfo.processInfo.environment
        metadataClient = MetadataHTTPClient.make(eventLoopGroup: group)
        credentials = CredentialCache(chain: .standard(environment: environment, httpClient: metadataClient), logger: logger)
        usesCredentialChain = fixedCredentials == nil
        invoker = try LambdaInvokeClient(
            configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(environment: environment, customEndpoint: endpoint), caFile: caFile, caFileSetting: caFileSetting),
            credentials: fixedCredentials.map { StaticCredentialSource($0) } ?? credentials,
            eventLoopGroup: group,
            logger: logger
        )
    }

    func shutdown() async {
        try? await invoker.shutdown()
        try? await metadataClient.shutdown()
    }
}

import AWSCredentials
import AsyncHTTPClient
import Foundation
import LambdaInvoke
import Logging
import NIOCore

/// The AWS half every command needs: the credential chain behind its cache, and the Invoke client.
struct AWSSide {
    let metadataClient: HTTPClient
    let credentials: CredentialCache
    let invoker: LambdaInvokeClient

    init(endpoint: String?, caFile: String?, group: any EventLoopGroup, logger: Logger) throws {
        let environment = ProcessInfo.processInfo.environment
        metadataClient = try LambdaInvokeClient.metadataHTTPClient(eventLoopGroup: group)
        credentials = CredentialCache(chain: .standard(environment: environment, httpClient: metadataClient), logger: logger)
        invoker = try LambdaInvokeClient(
            configuration: LambdaInvokeConfiguration(endpoints: LambdaEndpointResolver(environment: environment, customEndpoint: endpoint), caFile: caFile),
            credentials: credentials,
            eventLoopGroup: group,
            logger: logger
        )
    }

    func shutdown() async {
        try? await invoker.shutdown()
        try? await metadataClient.shutdown()
    }
}

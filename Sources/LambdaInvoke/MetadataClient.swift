import AsyncHTTPClient
import NIOCore

extension LambdaInvokeClient {
    /// The HTTP client the credential providers use: short connect timeout (IMDS answers at once or
    /// not at all), no redirects, no proxy.
    public static func metadataHTTPClient(eventLoopGroup: any EventLoopGroup) throws -> HTTPClient {
        HTTPClient(
            eventLoopGroupProvider: .shared(eventLoopGroup),
            configuration: HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .seconds(1), read: .seconds(10))
            )
        )
    }
}

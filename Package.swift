// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "lambda-gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lambda-gateway", targets: ["lambda-gateway"]),
        .executable(name: "lambda-mesh-extension", targets: ["lambda-mesh-extension"]),
        .library(name: "AWSSigV4", targets: ["AWSSigV4"]),
        .library(name: "LambdaPayload", targets: ["LambdaPayload"]),
        .library(name: "MeshIdentity", targets: ["MeshIdentity"]),
        .library(name: "TLSFiles", targets: ["TLSFiles"]),
        .library(name: "AWSCredentials", targets: ["AWSCredentials"]),
        .library(name: "LambdaInvoke", targets: ["LambdaInvoke"]),
        .library(name: "AWSAPI", targets: ["AWSAPI"]),
        .library(name: "ConsulAPI", targets: ["ConsulAPI"]),
        .library(name: "GatewayCore", targets: ["GatewayCore"]),
        .library(name: "Registrator", targets: ["Registrator"]),
        .library(name: "MeshExtension", targets: ["MeshExtension"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        // MARK: Pure logic, no I/O
        .target(
            name: "AWSSigV4",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "MeshIdentity"),
        .target(
            name: "LambdaPayload",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),

        // MARK: Files
        // Key and certificate files read by their content, for every module that loads one.
        .target(
            name: "TLSFiles",
            dependencies: [
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),

        // MARK: I/O clients
        .target(
            name: "AWSCredentials",
            dependencies: [
                "AWSSigV4",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "LambdaInvoke",
            dependencies: [
                "AWSSigV4",
                "AWSCredentials",
                "LambdaPayload",
                "TLSFiles",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Typed AWS control-plane calls (Lambda, SSM) over LambdaInvoke's pooled HTTP client.
        .target(
            name: "AWSAPI",
            dependencies: [
                "AWSSigV4",
                "AWSCredentials",
                "LambdaInvoke",
                "LambdaPayload",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .target(
            name: "ConsulAPI",
            dependencies: [
                "TLSFiles",
                "LambdaPayload",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: Gateway
        .target(
            name: "GatewayCore",
            dependencies: [
                "AWSSigV4",
                "ConsulAPI",
                "MeshIdentity",
                "LambdaInvoke",
                "LambdaPayload",
                "TLSFiles",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),

        // MARK: Dev mode (embedded CA and Lambda endpoint)
        .target(
            name: "DevMode",
            dependencies: [
                "AWSSigV4",
                "LambdaPayload",
                "MeshIdentity",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // The registrator (README.md, `lambda-gateway registrator`): tags and sync planning as pure code, the
        // Lambda, SSM and Consul effects at its edge.
        .target(
            name: "Registrator",
            dependencies: [
                "AWSAPI",
                "AWSCredentials",
                "ConsulAPI",
                "LambdaInvoke",
                "LambdaPayload",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),

        // The Lambda-to-mesh extension (README.md, `lambda-mesh-extension`): never links GatewayCore.
        .target(
            name: "MeshExtension",
            dependencies: [
                "MeshIdentity",
                "ConsulAPI",
                "LambdaPayload",
                "AWSAPI",
                "AWSCredentials",
                "LambdaInvoke",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // Binds two libm functions to versions Lambda's provided.al2023 (glibc 2.34) has, for the
        // packaged binaries (scripts/package-registrator.sh, scripts/package-extension.sh); inert otherwise.
        .target(name: "GlibcCompat", linkerSettings: [.linkedLibrary("m")]),

        // MARK: Executable
        .executableTarget(
            name: "lambda-gateway",
            dependencies: [
                "AWSSigV4",
                "ConsulAPI",
                "DevMode",
                "GatewayCore",
                "Registrator",
                "GlibcCompat",
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "LambdaInvoke",
                "LambdaPayload",
                "AWSCredentials",
                "MeshIdentity",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The Lambda extension's executable (a layer's `extensions/lambda-mesh-extension`): small,
        // without the gateway's server stack.
        .executableTarget(
            name: "lambda-mesh-extension",
            dependencies: [
                "MeshExtension",
                "GlibcCompat",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: Test support and tests
        .target(
            name: "TestSupport",
            dependencies: [
                "ConsulAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "LambdaPayload",
                "MeshIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/TestSupport"
        ),
        // The load client of Benchmarks/compare.sh: small, so it lives in the main build (and CI's
        // smoke run of the comparison); the micro-benchmark harness stays in Benchmarks/Package.swift.
        .executableTarget(
            name: "mesh-load",
            dependencies: [
                "TLSFiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            path: "Benchmarks/Tools/MeshLoad"
        ),
        .executableTarget(name: "consul-test-server", dependencies: ["TestSupport"], path: "Tests/ConsulTestServerMain"),
        // The extension's cold-start and per-connection figures (BENCHMARKS.md), on the test stand-ins.
        .executableTarget(
            name: "extension-bench",
            dependencies: [
                "TestSupport", "AWSAPI", "AWSCredentials", "AWSSigV4", "LambdaPayload",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Tools/ExtensionBench"
        ),
        .testTarget(name: "AWSSigV4Tests", dependencies: ["AWSSigV4", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "LambdaPayloadTests", dependencies: ["LambdaPayload", "TestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "MeshIdentityTests", dependencies: ["MeshIdentity"]),
        .testTarget(name: "TLSFilesTests", dependencies: ["TLSFiles", "TestSupport", .product(name: "NIOSSL", package: "swift-nio-ssl")]),
        .testTarget(
            name: "AWSCredentialsTests",
            dependencies: ["AWSCredentials", "TestSupport", "AWSSigV4", .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "LambdaInvokeTests",
            dependencies: [
                "LambdaInvoke", "AWSCredentials", "AWSSigV4", "LambdaPayload", "TLSFiles", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "Logging", package: "swift-log"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "AWSAPITests",
            dependencies: [
                "AWSAPI", "AWSCredentials", "AWSSigV4", "LambdaInvoke", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "DevModeTests", dependencies: ["DevMode", "AWSSigV4", "TestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "TestSupport", "ConsulAPI", "AWSAPI", "AWSCredentials", "AWSSigV4", "LambdaPayload", "GatewayCore",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "MeshExtensionTests",
            dependencies: [
                "MeshExtension", "LambdaPayload", "MeshIdentity", "AWSAPI", "AWSCredentials", "AWSSigV4", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RegistratorTests",
            dependencies: [
                "Registrator", "AWSAPI", "AWSCredentials", "AWSSigV4", "ConsulAPI", "LambdaPayload", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ConsulAPITests",
            dependencies: [
                "ConsulAPI", "TLSFiles", "TestSupport", .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"), .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        .testTarget(
            name: "GatewayCoreTests",
            dependencies: [
                "GatewayCore", "ConsulAPI", "MeshIdentity", "LambdaInvoke", "LambdaPayload", "AWSCredentials", "AWSSigV4", "DevMode", "TestSupport",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"), .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// MARK: Fuzz targets (Fuzz/, run by scripts/fuzz.sh)
// One libFuzzer executable per parser. They exist only when LAMBDA_GATEWAY_FUZZ=1: that build
// compiles everything with -sanitize=fuzzer,address and links libFuzzer, which the normal build and
// `swift test` must not see. It is a debug build, so `@testable import` reaches internal parsers.
if Context.environment["LAMBDA_GATEWAY_FUZZ"] == "1" {
    // No top-level code: libFuzzer's driver runs the target (Fuzz/FuzzSupport says how).
    let parseAsLibrary: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
    func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
        .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, path: "Fuzz/\(name)", swiftSettings: parseAsLibrary)
    }
    let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
    let nioEmbedded = Target.Dependency.product(name: "NIOEmbedded", package: "swift-nio")
    let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
    package.targets += [
        .target(name: "FuzzSupport", path: "Fuzz/FuzzSupport", swiftSettings: parseAsLibrary),
        fuzzTarget("FuzzSNI", ["MeshIdentity", nioCore, nioEmbedded, .product(name: "NIOTLS", package: "swift-nio")]),
        fuzzTarget("FuzzSPIFFE", ["MeshIdentity"]),
        fuzzTarget("FuzzARN", ["LambdaInvoke"]),
        fuzzTarget("FuzzPayloadJSON", ["LambdaPayload"]),
        fuzzTarget("FuzzResponseDecoder", ["LambdaPayload", nioCore]),
        fuzzTarget("FuzzConsulJSON", ["ConsulAPI", "GatewayCore", "MeshIdentity", nioCore]),
        fuzzTarget("FuzzGoDuration", ["ConsulAPI"]),
        fuzzTarget("FuzzStaticConfig", ["GatewayCore", "TestSupport"]),
        fuzzTarget("FuzzAccessLogFormat", ["GatewayCore", "LambdaPayload"]),
        fuzzTarget("FuzzTraceHeaders", ["LambdaPayload"]),
        fuzzTarget("FuzzEventStream", ["LambdaPayload", nioCore]),
        fuzzTarget("FuzzStreamingPrelude", ["LambdaPayload", nioCore]),
        fuzzTarget("FuzzUpstreamResponse", ["LambdaInvoke", "LambdaPayload", nioCore]),
        fuzzTarget("FuzzHTTP2Fields", ["GatewayCore", "TestSupport", .product(name: "NIOHPACK", package: "swift-nio-http2")]),
        fuzzTarget(
            "FuzzHTTP1Head",
            [
                "GatewayCore", "LambdaInvoke", "LambdaPayload", "AWSCredentials", "AWSSigV4", "MeshIdentity", nioCore, nioEmbedded, nioHTTP1,
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
}

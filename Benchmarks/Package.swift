// swift-tools-version: 6.1
// Micro benchmarks, in a package of their own so the main build and CI do not build the harness.
// (The load client, mesh-load in Tools/MeshLoad, is a target of the main package.)
// Run: swift package --disable-sandbox benchmark
import PackageDescription

let package = Package(
    name: "lambda-gateway-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "lambda-gateway", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "SigV4Benchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "AWSSigV4", package: "lambda-gateway"),
            ],
            path: "Benchmarks/SigV4Benchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "PayloadBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "LambdaPayload", package: "lambda-gateway"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/PayloadBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SnapshotBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "GatewayCore", package: "lambda-gateway"),
                .product(name: "ConsulAPI", package: "lambda-gateway"),
            ],
            path: "Benchmarks/SnapshotBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version: 6.1
import PackageDescription

// One room per concern (docs/design.md); imports point one way, down this picture:
//
//   tally ─▶ TallyServer (HTTP) ─┬─▶ TallyIngest (gate, parsers) ─▶ TallyCore ─▶ TallyLog ─▶ CLZ4
//                                └─▶ TallyPostgres ──────────────▶ TallyCore
//                                        └─▶ CLibPQ
//   TallyServer ─▶ Hummingbird, Prometheus, ServiceLifecycle
let package = Package(
    name: "tally",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tally", targets: ["tally"]),
        .library(name: "TallyLog", targets: ["TallyLog"]),
        .library(name: "TallyCore", targets: ["TallyCore"]),
        .library(name: "TallyPostgres", targets: ["TallyPostgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Without default traits: Tally needs neither swift-configuration nor full Foundation in the server.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    ],
    targets: [
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(name: "TallyLog", dependencies: ["CLZ4"]),
        .target(name: "TallyCore", dependencies: ["TallyLog", .product(name: "Logging", package: "swift-log")]),
        .target(name: "TallyPostgres", dependencies: ["TallyCore", "CLibPQ"]),
        // What every front (HTTP, gRPC) applies before the log: API keys, rate limits, the strict parsers.
        .target(name: "TallyIngest", dependencies: ["TallyCore"]),
        .target(
            name: "TallyServer",
            dependencies: [
                "TallyCore",
                "TallyIngest",
                "TallyPostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "tally",
            dependencies: [
                "TallyLog",
                "TallyCore",
                "TallyIngest",
                "TallyPostgres",
                "TallyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TallyLogTests", dependencies: ["TallyLog"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TallyCoreTests", dependencies: ["TallyCore"]),
        .testTarget(name: "TallyPostgresTests", dependencies: ["TallyPostgres"]),
        .testTarget(name: "TallyIngestTests", dependencies: ["TallyIngest"]),
        // Counting against a real PostgreSQL: exactly-once across crashes, outages, recovery.
        .testTarget(name: "TallyIntegrationTests", dependencies: ["TallyCore", "TallyPostgres"]),
        .testTarget(
            name: "TallyServerTests",
            dependencies: ["TallyServer", .product(name: "HummingbirdTesting", package: "hummingbird")]
        ),
        // Runs the built `tally` binary as an operator would.
        .testTarget(name: "TallyCLITests", dependencies: ["tally", "TallyLog"]),
    ]
)

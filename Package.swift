// swift-tools-version: 6.1
import PackageDescription

// One room per concern (docs/design.md); imports point one way, down this picture:
//
//   tally ─┬─▶ TallyServer (HTTP) ─┬─▶ TallyIngest (gate, parsers) ─▶ TallyCore ─▶ TallyLog ─▶ CLZ4
//          │                       └─▶ TallyPostgres ──────────────▶ TallyCore
//          │                               └─▶ CLibPQ
//          └─▶ TallyGRPC (gRPC) ───┬─▶ TallyIngest, TallyCore
//                                  └─▶ TallyProtos (generated from Protos/; `make proto`)
//   TallyServer ─▶ Hummingbird, Prometheus, ServiceLifecycle; TallyGRPC ─▶ grpc-swift-2
//
// The client side never imports a server room (docs/design.md, "The Swift client"):
//
//   TallyRequestCounter (Hummingbird middleware) ─┐
//   TallyRequestCounterGRPC (server interceptor) ─┼─▶ TallyClient (queue, batches, HTTP) ─▶ TallyKeyNames
//   TallyClientGRPC (the gRPC stream transport) ──┘                                          ▲
//          └─▶ TallyProtos                                     tally (`tally key`) ──────────┘
//
// The request path's rooms skip runtime exclusivity checks in release builds: they cost
// about 2 % of a request's CPU in a profile under load (BENCHMARKS.md), and debug builds,
// which every test runs, keep them on to catch the violations they exist for.
let requestPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "tally",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tally", targets: ["tally"]),
        .library(name: "TallyLog", targets: ["TallyLog"]),
        .library(name: "TallyCore", targets: ["TallyCore"]),
        .library(name: "TallyPostgres", targets: ["TallyPostgres"]),
        // For applications that count: each product pulls in only what it uses.
        .library(name: "TallyClient", targets: ["TallyClient"]),
        .library(name: "TallyClientGRPC", targets: ["TallyClientGRPC"]),
        .library(name: "TallyRequestCounter", targets: ["TallyRequestCounter"]),
        .library(name: "TallyRequestCounterGRPC", targets: ["TallyRequestCounterGRPC"]),
        // For the fuzz targets in Fuzz/ (a separate package, like Benchmarks/), which feed the
        // strict parsers untrusted bytes.
        .library(name: "TallyIngest", targets: ["TallyIngest"]),
        // The generated messages and client stubs, for clients outside this package (the gRPC load generator in Benchmarks/).
        .library(name: "TallyProtos", targets: ["TallyProtos"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Without default traits: Tally needs neither swift-configuration nor full Foundation in the server.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        // Without default traits, as grpc-swift declares it (one of them pulls in full Foundation).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: []),
    ],
    targets: [
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(name: "TallyLog", dependencies: ["CLZ4"], swiftSettings: requestPathSettings),
        .target(name: "TallyCore", dependencies: ["TallyLog", .product(name: "Logging", package: "swift-log")],
                swiftSettings: requestPathSettings),
        .target(name: "TallyPostgres", dependencies: ["TallyCore", "CLibPQ"]),
        // What every front (HTTP, gRPC) applies before the log: API keys, rate limits, the strict parsers.
        .target(name: "TallyIngest", dependencies: ["TallyCore"], swiftSettings: requestPathSettings),
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
            ],
            swiftSettings: requestPathSettings
        ),
        // The generated messages and stubs of Protos/ (committed; `make proto` regenerates).
        .target(
            name: "TallyProtos",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "TallyGRPC",
            dependencies: [
                "TallyCore",
                "TallyIngest",
                "TallyProtos",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // UUIDv5 keys of names ("GET /users/{id}") in Tally's namespace: no dependencies, so the
        // `tally` tool and every client agree on one implementation.
        .target(name: "TallyKeyNames"),
        // The Swift client: a bounded queue, batches, idempotent retries over HTTP (async-http-client).
        .target(
            name: "TallyClient",
            dependencies: [
                "TallyKeyNames",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The client over the gRPC `Increment` stream instead of HTTP.
        .target(
            name: "TallyClientGRPC",
            dependencies: [
                "TallyClient",
                "TallyProtos",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ]
        ),
        // Counts requests by route template through the client (Hummingbird middleware).
        .target(
            name: "TallyRequestCounter",
            dependencies: ["TallyClient", .product(name: "Hummingbird", package: "hummingbird")]
        ),
        // Counts RPCs by full method name through the client (grpc-swift-2 server interceptor).
        .target(
            name: "TallyRequestCounterGRPC",
            dependencies: ["TallyClient", .product(name: "GRPCCore", package: "grpc-swift-2")]
        ),
        // Examples/request-counter: a small Hummingbird app counting its requests (`make example`).
        .executableTarget(
            name: "tally-example",
            dependencies: [
                "TallyClient",
                "TallyRequestCounter",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/request-counter/Sources"
        ),
        .executableTarget(
            name: "tally",
            dependencies: [
                "TallyKeyNames",
                "TallyLog",
                "TallyCore",
                "TallyIngest",
                "TallyPostgres",
                "TallyServer",
                "TallyGRPC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "TallyLogTests", dependencies: ["TallyLog"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TallyCoreTests", dependencies: ["TallyCore"]),
        .testTarget(name: "TallyPostgresTests", dependencies: ["TallyPostgres"]),
        .testTarget(name: "TallyIngestTests", dependencies: ["TallyIngest"]),
        // The gRPC front through a real client over a socket, against a real log and PostgreSQL.
        .testTarget(
            name: "TallyGRPCTests",
            dependencies: [
                "TallyGRPC", "TallyPostgres",
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ]
        ),
        // Counting against a real PostgreSQL: exactly-once across crashes, outages, recovery.
        .testTarget(name: "TallyIntegrationTests", dependencies: ["TallyCore", "TallyPostgres"]),
        .testTarget(
            name: "TallyServerTests",
            dependencies: ["TallyServer", .product(name: "HummingbirdTesting", package: "hummingbird")]
        ),
        .testTarget(
            name: "TallyClientTests",
            dependencies: [
                "TallyClient", "TallyKeyNames", "TallyRequestCounter", "TallyRequestCounterGRPC", "TallyProtos",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
            ]
        ),
        // Runs the built `tally` binary as an operator would, and the example app beside it.
        .testTarget(
            name: "TallyCLITests",
            dependencies: [
                "tally", "tally-example", "TallyLog", "TallyPostgres", "TallyProtos", "TallyClient", "TallyClientGRPC",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ]
        ),
    ]
)

// swift-tools-version: 6.1
import PackageDescription

// Targets follow DESIGN.md; imports point one way, down this picture:
//
//   tally ─▶ TallyPostgres ─▶ TallyCore ─▶ TallyLog ─▶ CLZ4
//                    └─▶ CLibPQ
//
// TallyServer (the HTTP front) joins with its issue.
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
    ],
    targets: [
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(name: "TallyLog", dependencies: ["CLZ4"]),
        .target(name: "TallyCore", dependencies: ["TallyLog", .product(name: "Logging", package: "swift-log")]),
        .target(name: "TallyPostgres", dependencies: ["TallyCore", "CLibPQ"]),
        .executableTarget(
            name: "tally",
            dependencies: [
                "TallyLog",
                "TallyCore",
                "TallyPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TallyLogTests", dependencies: ["TallyLog"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TallyCoreTests", dependencies: ["TallyCore"]),
        .testTarget(name: "TallyPostgresTests", dependencies: ["TallyPostgres"]),
        // Counting against a real PostgreSQL: exactly-once across crashes, outages, recovery.
        .testTarget(name: "TallyIntegrationTests", dependencies: ["TallyCore", "TallyPostgres"]),
        // Runs the built `tally` binary as an operator would.
        .testTarget(name: "TallyCLITests", dependencies: ["tally", "TallyLog"]),
    ]
)

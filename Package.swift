// swift-tools-version: 6.1
import PackageDescription

// Targets follow DESIGN.md; imports point one way, down this picture:
//
//   tally ─▶ TallyLog ─▶ CLZ4
//
// TallyCore, TallyPostgres and TallyServer join with their issues.
let package = Package(
    name: "tally",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tally", targets: ["tally"]),
        .library(name: "TallyLog", targets: ["TallyLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .target(name: "TallyLog", dependencies: ["CLZ4"]),
        .executableTarget(
            name: "tally",
            dependencies: [
                "TallyLog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TallyLogTests", dependencies: ["TallyLog"], resources: [.copy("Fixtures")]),
    ]
)

// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live in their own package so that `make test` (CI) never builds them.
// Run with `make bench` (see BENCHMARKS.md).
let package = Package(
    name: "TallyBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tally", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "LogBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TallyLog", package: "tally"),
                .product(name: "TallyCore", package: "tally"),
            ],
            path: "Benchmarks/LogBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // TallyClient.increment(key:by:) per call (target ≤ 1 µs).
        .executableTarget(
            name: "ClientBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TallyClient", package: "tally"),
            ],
            path: "Benchmarks/ClientBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The client's two transports against a real daemon: HTTP bulk vs the gRPC stream.
        .executableTarget(
            name: "ClientTransportBench",
            dependencies: [
                .product(name: "TallyClient", package: "tally"),
                .product(name: "TallyClientGRPC", package: "tally"),
            ],
            path: "Sources/ClientTransportBench"
        ),
        // 1 M-key checkpoints against PostgreSQL, beside psql doing the same upsert by COPY.
        .executableTarget(
            name: "CheckpointBench",
            dependencies: [
                .product(name: "TallyCore", package: "tally"),
                .product(name: "TallyPostgres", package: "tally"),
            ],
            path: "Sources/CheckpointBench"
        ),
    ]
)

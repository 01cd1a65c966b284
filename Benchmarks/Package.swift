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
        // The same versions as the repository's Package.swift.
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
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
        // A node's data directory with a log of N records, for the start-up and recover benchmark.
        .executableTarget(
            name: "LargeLog",
            dependencies: [.product(name: "TallyLog", package: "tally")],
            path: "Sources/LargeLog"
        ),
        // gRPC Increment streams against a running `tally serve --grpc-listen` (scripts/bench-throughput.py).
        .executableTarget(
            name: "GRPCLoad",
            dependencies: [
                .product(name: "TallyProtos", package: "tally"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ],
            path: "Sources/GRPCLoad"
        ),
    ]
)

// swift-tools-version: 6.1
import PackageDescription

// Coverage-guided fuzzing (libFuzzer) of the two parsers that meet untrusted bytes: the log
// segment reader (TallyLog: `tally dump`, `verify`, `recover` read any file) and the strict
// JSON intake (TallyIngest). A package of its own, like Benchmarks/, so that `make test` never
// builds it. Run with `make fuzz` (scripts/fuzz.sh), which builds with
// `-sanitize=fuzzer,address`; each executable is a libFuzzer binary whose `main` is
// libFuzzer's, hence `-parse-as-library`. Seeds: Corpus/<target>/ (see Corpus/README.md).
let fuzzTarget: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "TallyFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tally", path: ".."),
    ],
    targets: [
        // libFuzzer's driver and AddressSanitizer's poisoning, as C declarations.
        .target(name: "CFuzzRuntime"),
        // The oracles: independent re-implementations of the documented formats and rules,
        // which the fuzz targets hold the real code to.
        .target(
            name: "FuzzSupport",
            dependencies: [
                "CFuzzRuntime",
                .product(name: "TallyLog", package: "tally"),
                .product(name: "TallyIngest", package: "tally"),
            ]
        ),
        // A segment file as `tally dump` and `verify` read it: the input's bytes, unchanged.
        .executableTarget(name: "FuzzSegmentReader", dependencies: ["FuzzSupport"], swiftSettings: fuzzTarget),
        // The input as a segment whose checksums the target recomputes (and whose marked frames
        // it lz4-compresses), so that mutations get past the CRCs to lz4 and the request section.
        .executableTarget(name: "FuzzSegmentFrames", dependencies: ["FuzzSupport"], swiftSettings: fuzzTarget),
        // `POST /increment` bodies against a reference check built on JSONSerialization.
        .executableTarget(name: "FuzzIncrementParser", dependencies: ["FuzzSupport"], swiftSettings: fuzzTarget),
        // `POST /increments` NDJSON bodies, line by line against the same reference.
        .executableTarget(name: "FuzzBulkParser", dependencies: ["FuzzSupport"], swiftSettings: fuzzTarget),
    ]
)

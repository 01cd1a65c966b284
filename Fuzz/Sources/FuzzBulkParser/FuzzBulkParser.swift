import FuzzSupport

// The input is a `POST /increments` NDJSON body. Properties as for FuzzIncrementParser, line by
// line, plus the body rules (no empty or blank line, at most maxIncrements, all or nothing).
// maxIncrements comes from the input's length, so that small limits are exercised too.

private let bothWays = environmentFlag("FUZZ_BOTH_WAYS")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let maxIncrements = [1, 2, 3, 1_000][size % 4]
    BulkOracle.check(UnsafeRawBufferPointer(start: data, count: size), maxIncrements: maxIncrements, bothWays: bothWays)
    return 0
}

/// The program's entry point (see `runLibFuzzer`): libFuzzer's driver, on `fuzz`.
@_cdecl("FuzzBulkParser_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in fuzz(nonNull(data), size) }
}

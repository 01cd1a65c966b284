import FuzzSupport

// The input is a `POST /increment` body. Properties: IncrementParser.parse never crashes or
// reads outside the body (AddressSanitizer: the body is libFuzzer's exactly-sized buffer), and
// never accepts what the strict rules refuse, nor reads another key or value than they do
// (IncrementOracle). FUZZ_BOTH_WAYS=1 also traps on a refusal of what the reference accepts.

private let bothWays = environmentFlag("FUZZ_BOTH_WAYS")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    IncrementOracle.check(UnsafeRawBufferPointer(start: data, count: size), bothWays: bothWays)
    return 0
}

/// The program's entry point (see `runLibFuzzer`): libFuzzer's driver, on `fuzz`.
@_cdecl("FuzzIncrementParser_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in fuzz(nonNull(data), size) }
}

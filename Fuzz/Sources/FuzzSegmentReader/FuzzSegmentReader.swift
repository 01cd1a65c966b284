import FuzzSupport

// The input is a segment file, byte for byte, as `tally dump`, `verify` and `recover` meet it.
// Properties (SegmentOracle.check): no crash or out-of-bounds read (with AddressSanitizer);
// the scan returns exactly the frames that are valid, reports every other byte as damage, and
// decodes each frame's records and request entries as the format says, or refuses the frame.

nonisolated(unsafe) private let scratch = ScratchDirectory(label: "fuzz-segment-reader")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    SegmentOracle.check(bytes, in: scratch)
    return 0
}

/// The program's entry point (see `runLibFuzzer`): libFuzzer's driver, on `fuzz`.
@_cdecl("FuzzSegmentReader_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in fuzz(nonNull(data), size) }
}

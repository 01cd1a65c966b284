import FuzzSupport

// The input is a segment whose checksums do not matter: the target recomputes the header's and
// every frame's CRC (and lz4-compresses frames marked for it: flag lz4 with stored length equal
// to raw length), so that mutations reach the frame header rules, lz4 and the request section
// decoder instead of stopping at a checksum mismatch. Same properties as FuzzSegmentReader.

nonisolated(unsafe) private let scratch = ScratchDirectory(label: "fuzz-segment-frames")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = SegmentOracle.fixUp(Array(UnsafeBufferPointer(start: data, count: size)))
    SegmentOracle.check(bytes, in: scratch)
    return 0
}

/// The program's entry point (see `runLibFuzzer`): libFuzzer's driver, on `fuzz`.
@_cdecl("FuzzSegmentFrames_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in fuzz(nonNull(data), size) }
}

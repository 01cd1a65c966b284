import CFuzzRuntime

/// A libFuzzer callback: `LLVMFuzzerTestOneInput`'s signature.
public typealias FuzzTestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// Runs libFuzzer on `test`; the entry point of every fuzz target calls this.
///
/// SwiftPM links an executable target with its `main` aliased to `<Target>_main` (so that
/// tests can link the target); with `-parse-as-library` nothing defines that symbol, and
/// libFuzzer's own `main` would not be used anyway. So each target defines `<Target>_main`
/// with `@_cdecl` and hands over to libFuzzer's driver here, which then behaves exactly like
/// libFuzzer's `main` (flags, corpus directories, crash files).
public func runLibFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ test: FuzzTestOneInput
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, test)
}

/// libFuzzer never passes a null pointer, not even for the empty input; this keeps a target's
/// callback non-optional all the same.
public func nonNull(_ data: UnsafePointer<UInt8>?) -> UnsafePointer<UInt8> {
    data ?? emptyInput
}

nonisolated(unsafe) private let emptyInput = UnsafePointer(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))

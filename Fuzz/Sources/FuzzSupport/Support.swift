#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Stops the fuzzer with a finding. libFuzzer treats the trap as a crash and saves the input
/// (`crash-<sha1>`); the message says which property broke.
public func violation(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError("FUZZ PROPERTY VIOLATION: \(message())", file: file, line: line)
}

/// `violation` unless `condition` holds.
@inline(__always)
public func require(_ condition: Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
    if !condition { violation(message(), file: file, line: line) }
}

/// CRC-32C, byte at a time from one table: deliberately not TallyLog's slicing-by-8, so a bug
/// there cannot hide behind the same bug here.
public enum ReferenceCRC32C {
    private static let table: [UInt32] = (0..<256).map { byte -> UInt32 in
        var crc = UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    public static func checksum(_ bytes: ArraySlice<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        var state = ~crc
        for byte in bytes { state = table[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8) }
        return ~state
    }
}

/// liblz4's block API, looked up in the process (TallyLog links it) rather than through
/// TallyLog's internal wrapper.
public enum ReferenceLZ4 {
    private typealias Compress = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int32, Int32) -> Int32
    private typealias Decompress = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int32, Int32) -> Int32

    private static func symbol<T>(_ name: String, as type: T.Type) -> T {
        var handle = dlopen(nil, RTLD_NOW)
        var pointer = dlsym(handle, name)
        if pointer == nil {
            handle = dlopen("liblz4.so.1", RTLD_NOW)
            pointer = dlsym(handle, name)
        }
        guard let pointer else { fatalError("liblz4's \(name) not found") }
        return unsafeBitCast(pointer, to: type)
    }

    nonisolated(unsafe) private static let compressFunction = symbol("LZ4_compress_default", as: Compress.self)
    nonisolated(unsafe) private static let decompressFunction = symbol("LZ4_decompress_safe", as: Decompress.self)

    /// The lz4 block of `source` when it is smaller than `source` (as the writer stores it).
    public static func compress(_ source: ArraySlice<UInt8>) -> [UInt8]? {
        guard source.count > 1 else { return nil }
        var output = [UInt8](repeating: 0, count: source.count - 1)
        let written = source.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                compressFunction(input.baseAddress?.assumingMemoryBound(to: CChar.self),
                                 out.baseAddress?.assumingMemoryBound(to: CChar.self),
                                 Int32(input.count), Int32(out.count))
            }
        }
        guard written > 0 else { return nil }
        return Array(output[0..<Int(written)])
    }

    /// The decompression of `source` when it is exactly `rawLength` bytes, else nil.
    public static func decompress(_ source: ArraySlice<UInt8>, rawLength: Int) -> [UInt8]? {
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: max(rawLength, 1), alignment: 1)
        defer { output.deallocate() }
        let produced = source.withUnsafeBytes { input in
            decompressFunction(input.baseAddress?.assumingMemoryBound(to: CChar.self),
                               output.baseAddress?.assumingMemoryBound(to: CChar.self),
                               Int32(input.count), Int32(rawLength))
        }
        guard produced == Int32(rawLength) else { return nil }
        return Array(UnsafeRawBufferPointer(rebasing: output[0..<rawLength]))
    }
}

/// Little- and big-endian reads from a byte array, bounds-checked by the array.
extension Array where Element == UInt8 {
    @inline(__always) func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type = T.self) -> T {
        var value: T = 0
        for index in 0..<(T.bitWidth / 8) { value |= T(self[offset + index]) << (8 * index) }
        return value
    }

    @inline(__always) func be64(_ offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value = value << 8 | UInt64(self[offset + index]) }
        return value
    }

    @inline(__always) mutating func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for index in 0..<(T.bitWidth / 8) { self[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}

/// One directory per fuzzing process, under $TMPDIR, for the segment file of each input.
public final class ScratchDirectory {
    public let path: String

    public init(label: String) {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/\(label)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            fatalError("mkdtemp failed: errno \(errno)")
        }
        path = String(cString: made)
    }

    /// Writes `bytes` as the only file of the directory, named `name` (whatever else an earlier
    /// input left there, such as `Log.open`'s LOCK and `.broken` files, is removed).
    @discardableResult
    public func writeOnly(_ name: String, _ bytes: [UInt8]) -> String {
        removeAll()
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { fatalError("open \(file): errno \(errno)") }
        defer { close(fd) }
        var done = 0
        bytes.withUnsafeBytes { raw in
            while done < raw.count {
                let written = write(fd, raw.baseAddress! + done, raw.count - done)
                guard written > 0 else { fatalError("write \(file): errno \(errno)") }
                done += written
            }
        }
        return file
    }

    private func removeAll() {
        guard let directory = opendir(path) else { fatalError("opendir \(path): errno \(errno)") }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names where unlink(path + "/" + name) != 0 {
            fatalError("unlink \(path)/\(name): errno \(errno) (the fuzz targets write only files there)")
        }
    }

    deinit {
        removeAll()
        rmdir(path)
    }
}

/// Whether the environment variable `name` is set to something other than "" or "0".
public func environmentFlag(_ name: String) -> Bool {
    guard let value = getenv(name) else { return false }
    let text = String(cString: value)
    return !text.isEmpty && text != "0"
}

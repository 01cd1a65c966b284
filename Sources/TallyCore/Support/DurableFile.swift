import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writes small files so that a crash leaves either the old content or the new, never a
/// torn mix: temporary file, fsync, rename, fsync of the directory; or, for a fixed-size
/// checksummed file, one in-place sector write.
enum DurableFile {
    /// Reads a small file whole; the error keeps the errno so that callers can tell a missing
    /// file (ENOENT) from one they cannot read.
    static func read(_ path: String) -> Result<[UInt8], POSIXError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(POSIXError(.init(rawValue: errno) ?? .EIO)) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return .failure(POSIXError(.init(rawValue: errno) ?? .EIO)) }
            if count == 0 { return .success(bytes) }
            bytes += chunk[0..<count]
            guard bytes.count <= 1 << 20 else { return .failure(POSIXError(.EFBIG)) }
        }
    }

    /// Replaces the content of a fixed-size file in place when it exists with exactly that
    /// size (one pwrite and fdatasync: no new block, so it works on a full disk); else writes
    /// it whole with `write` (temporary file and rename). Callers keep `bytes` within one
    /// sector and checksummed, since an in-place write is atomic only at that size.
    static func overwrite(_ bytes: [UInt8], at path: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return try write(Data(bytes), to: path) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_size == bytes.count else { return try write(Data(bytes), to: path) }
        try bytes.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let result = pwrite(fd, raw.baseAddress! + written, raw.count - written, off_t(written))
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
                written += result
            }
        }
        while fdatasync(fd) != 0 {
            guard errno == EINTR else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        }
    }

    static func write(_ data: Data, to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        try data.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let result = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
                written += result
            }
        }
        guard fsync(fd) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        guard rename(temporary, path) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let directory = (path as NSString).deletingLastPathComponent
        let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        defer { close(dirFD) }
        guard fsync(dirFD) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    }
}

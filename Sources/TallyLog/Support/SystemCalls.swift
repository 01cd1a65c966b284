import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin, throwing wrappers over the POSIX calls the log makes. Every wrapper retries EINTR
/// and nothing else: a failed write or fsync is reported, never retried (see `LogWriter`).
enum SystemCalls {
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(LogError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw .io(operation: "open", path: path, errno: errno) }
        }
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Writes all of `bytes` at `offset`, looping over short writes.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(LogError) {
        var written = 0
        while written < bytes.count {
            let result = pwrite(fd, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
            if result > 0 {
                written += result
            } else if result < 0 && errno == EINTR {
                continue
            } else {
                throw .io(operation: "write", path: path, errno: result < 0 ? errno : EIO)
            }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(LogError) {
        var failure: LogError?
        bytes.withUnsafeBytes { raw in
            do throws(LogError) {
                try writeAll(fd, raw, at: offset, path: path)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    static func dataSync(_ fd: Int32, path: String) throws(LogError) {
        while fdatasync(fd) != 0 {
            if errno != EINTR { throw .io(operation: "fdatasync", path: path, errno: errno) }
        }
    }

    static func fullSync(_ fd: Int32, path: String) throws(LogError) {
        while fsync(fd) != 0 {
            if errno != EINTR { throw .io(operation: "fsync", path: path, errno: errno) }
        }
    }

    /// fsyncs a directory so that a create, rename or unlink in it is durable.
    static func syncDirectory(_ path: String) throws(LogError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fullSync(fd, path: path)
        directorySyncObserver.withLock { $0 }?(path)
    }

    /// Told of every directory fsync, for tests that check a directory entry was made
    /// durable (no test can see a missing fsync in the page cache). Nil in production.
    static let directorySyncObserver = Mutex<(@Sendable (String) -> Void)?>(nil)

    static func truncate(_ fd: Int32, toSizeBytes size: Int, path: String) throws(LogError) {
        while ftruncate(fd, off_t(size)) != 0 {
            if errno != EINTR { throw .io(operation: "ftruncate", path: path, errno: errno) }
        }
    }

    static func rename(_ from: String, _ to: String) throws(LogError) {
        if Glibc.rename(from, to) != 0 { throw .io(operation: "rename", path: "\(from) -> \(to)", errno: errno) }
    }

    static func unlink(_ path: String) throws(LogError) {
        if Glibc.unlink(path) != 0 && errno != ENOENT { throw .io(operation: "unlink", path: path, errno: errno) }
    }

    /// Creates a directory, and makes its creation durable: a directory entry is data of the
    /// parent, so without the parent's fsync a crash could lose the new directory and every
    /// segment written into it since.
    static func makeDirectory(_ path: String) throws(LogError) {
        if mkdir(path, 0o755) == 0 {
            try syncDirectory(parentDirectory(of: path))
        } else if errno != EEXIST {
            throw .io(operation: "mkdir", path: path, errno: errno)
        }
    }

    /// `path` without its last component (`.` for a bare name).
    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    static func fileSize(_ fd: Int32, path: String) throws(LogError) -> Int {
        var info = stat()
        if fstat(fd, &info) != 0 { throw .io(operation: "fstat", path: path, errno: errno) }
        return Int(info.st_size)
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Reads a whole file. Segments are bounded (64 MiB by default), so reading one into
    /// memory is the simple and fast way to scan it.
    static func readFile(_ path: String) throws(LogError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        let size = try fileSize(fd, path: path)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        var failure: Int32 = 0
        bytes.withUnsafeMutableBytes { buffer in
            while done < size {
                let result = pread(fd, buffer.baseAddress! + done, size - done, off_t(done))
                if result > 0 {
                    done += result
                } else if result < 0 && errno == EINTR {
                    continue
                } else {
                    failure = result < 0 ? errno : 0
                    break
                }
            }
        }
        if failure != 0 { throw .io(operation: "read", path: path, errno: failure) }
        if done < size { bytes.removeSubrange(done...) }  // the file shrank while we read it
        return bytes
    }

    /// Names of the entries in a directory, unsorted.
    static func listDirectory(_ path: String) throws(LogError) -> [String] {
        guard let dir = opendir(path) else { throw .io(operation: "opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

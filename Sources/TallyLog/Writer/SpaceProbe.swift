#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Asks the filesystem whether a frame would fit again after a write found the disk full.
///
/// The question is asked with a real write, not `statvfs`: free blocks, quotas, reserved
/// blocks and the filesystem's own accounting all decide whether the next frame fits, and
/// only a write sees them all. The probe writes `sizeBytes` of zeros to `space-probe` in the
/// log directory and deletes it. The file is never a segment (its name does not parse as
/// one), so a crash that leaves it behind costs nothing: the next probe replaces it.
struct SpaceProbe {
    static let fileName = "space-probe"

    let directory: String

    /// Whether `sizeBytes` could be written now. Throws only what is not lack of space.
    func hasRoom(forBytes sizeBytes: Int, fault: Int32?) throws(LogError) -> Bool {
        let path = directory + "/" + Self.fileName
        defer { try? SystemCalls.unlink(path) }
        do throws(LogError) {
            if let fault { throw .io(operation: "write", path: path, errno: fault) }
            let fd = try SystemCalls.open(path, O_WRONLY | O_CREAT | O_TRUNC)
            defer { SystemCalls.close(fd) }
            let chunk = [UInt8](repeating: 0, count: min(sizeBytes, 1 << 20))
            var offset = 0
            while offset < sizeBytes {
                let count = min(chunk.count, sizeBytes - offset)
                try SystemCalls.writeAll(fd, count == chunk.count ? chunk : Array(chunk[0..<count]), at: offset, path: path)
                offset += count
            }
            return true
        } catch where error.isOutOfSpace {
            return false
        }
    }
}

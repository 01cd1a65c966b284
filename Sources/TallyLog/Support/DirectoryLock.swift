#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock` on `<directory>/LOCK`, held for the life of a `Log`.
///
/// flock locks belong to the open file description, so the kernel drops the lock when the
/// process dies (even by kill -9) and a second `Log` in the same process is refused too.
/// The holder's PID is written into the file only to make the refusal message useful.
public final class DirectoryLock: Sendable {
    static let fileName = "LOCK"

    public let path: String
    private let fd: Int32
    private let released = Atomic(false)

    public init(directory: String) throws(LogError) {
        let path = directory + "/" + Self.fileName
        // Lock before the stored properties are set: a class whose init throws after they
        // are all set runs deinit, which would close the descriptor a second time (and with
        // it whatever file or socket had meanwhile reused the number).
        let fd = try SystemCalls.open(path, O_RDWR | O_CREAT)
        if !Self.lock(fd) {
            let code = errno
            let holder = Self.readPID(fd)
            SystemCalls.close(fd)
            if code == EWOULDBLOCK { throw .locked(directory: directory, holderPID: holder) }
            throw .io(operation: "flock", path: path, errno: code)
        }
        self.path = path
        self.fd = fd
        let pid = Array("\(getpid())\n".utf8)
        try? SystemCalls.truncate(fd, toSizeBytes: 0, path: path)
        _ = pid.withUnsafeBytes { try? SystemCalls.writeAll(fd, $0, at: 0, path: path) }
    }

    /// Takes the lock, trying again for a moment when it is held: a process forking a child
    /// lends the child its descriptors until the child's exec closes them, so a lock just
    /// released can look held for a few microseconds. A real holder keeps it far longer.
    private static func lock(_ fd: Int32) -> Bool {
        for attempt in 0..<20 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
            guard errno == EWOULDBLOCK, attempt < 19 else { return false }
            usleep(10_000)
        }
        return false
    }

    /// Closing the descriptor releases the lock; the file stays, harmlessly.
    public func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) {
            SystemCalls.close(fd)
        }
    }

    deinit {
        release()
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 15, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Int32(text)
    }
}

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A segment on disk as the writer tracks it.
struct SegmentEntry: Sendable {
    var fileName: String
    var path: String
    var firstLSN: LSN
    var sizeBytes: Int
}

/// The segment the writer appends to: its entry plus an open descriptor.
struct ActiveSegment {
    var entry: SegmentEntry
    let fd: Int32
    /// Frames appended since this process opened or created the segment, plus those found
    /// in it at open. A segment with none is never rolled away (empty intervals cost nothing).
    var frameCount: Int

    /// Creates a new segment durably: header into `<name>.tmp`, fsync, rename, fsync the
    /// directory. A crash at any point leaves either no segment or a complete empty one.
    static func create(directory: String, nodeID: LogKey, firstLSN: LSN) throws(LogError) -> ActiveSegment {
        let name = SegmentName.fileName(firstLSN: firstLSN)
        let path = directory + "/" + name
        let temporaryPath = path + ".tmp"  // ends in SegmentName.temporarySuffix
        try SystemCalls.unlink(temporaryPath)
        let fd = try SystemCalls.open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL)
        do throws(LogError) {
            let header = SegmentHeader(nodeID: nodeID, firstLSN: firstLSN).encoded()
            try SystemCalls.writeAll(fd, header, at: 0, path: temporaryPath)
            try SystemCalls.fullSync(fd, path: temporaryPath)
            try SystemCalls.rename(temporaryPath, path)
            try SystemCalls.syncDirectory(directory)
        } catch {
            SystemCalls.close(fd)
            try? SystemCalls.unlink(temporaryPath)
            throw error
        }
        let entry = SegmentEntry(fileName: name, path: path, firstLSN: firstLSN, sizeBytes: SegmentHeader.sizeBytes)
        return ActiveSegment(entry: entry, fd: fd, frameCount: 0)
    }

    /// Reopens the last segment for appending after a scan found it sound.
    static func reopen(_ entry: SegmentEntry, frameCount: Int) throws(LogError) -> ActiveSegment {
        let fd = try SystemCalls.open(entry.path, O_WRONLY)
        return ActiveSegment(entry: entry, fd: fd, frameCount: frameCount)
    }
}

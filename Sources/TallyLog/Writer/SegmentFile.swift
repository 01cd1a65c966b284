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
    /// The segment's format version: the writer appends only to a current-version segment.
    var formatVersion: UInt32 = SegmentHeader.currentVersion

    /// Creates a new segment durably: header into `<name>.tmp`, fsync, rename, fsync the
    /// directory. A crash at any point leaves either no segment or a complete empty one.
    static func create(directory: String, nodeID: LogKey, firstLSN: LSN) throws(LogError) -> ActiveSegment {
        let name = SegmentName.fileName(firstLSN: firstLSN)
        let path = directory + "/" + name
        // Ends in SegmentName.temporarySuffix. The rename below also replaces an existing empty
        // segment of an older version atomically (see `reopen`).
        let temporaryPath = path + ".tmp"
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

    /// Reopens the last segment for appending after a scan found it sound. An empty segment
    /// of an older format version is replaced, atomically (rename over it), by an empty one
    /// of the current version with the same first LSN; one with frames is kept as it is, and
    /// the writer rolls away from it before its first frame.
    static func reopen(_ entry: SegmentEntry, frameCount: Int, formatVersion: UInt32,
                       nodeID: LogKey, directory: String) throws(LogError) -> ActiveSegment {
        if formatVersion < SegmentHeader.currentVersion && frameCount == 0 {
            return try create(directory: directory, nodeID: nodeID, firstLSN: entry.firstLSN)
        }
        let fd = try SystemCalls.open(entry.path, O_WRONLY)
        return ActiveSegment(entry: entry, fd: fd, frameCount: frameCount, formatVersion: formatVersion)
    }
}

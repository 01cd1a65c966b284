#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two ways the log ever removes bytes, shared by the daemon and `tally recover`.
public enum LogMaintenance {
    /// Copies the damaged tail to `<segment>.<offset>.broken` (synced), then cuts the segment
    /// at the end of its last valid frame. The copy means an automatic repair never loses a
    /// byte, even if the classification were wrong.
    public static func cutTornTail(segment: LogInspection.Segment, damage: SegmentDamage,
                                   directory: String) throws(LogError) -> TornTailCut {
        let bytes = try SystemCalls.readFile(segment.path)
        let backupPath = segment.path + ".\(damage.offset)" + SegmentName.brokenSuffix
        let backup = try SystemCalls.open(backupPath, O_WRONLY | O_CREAT | O_TRUNC)
        defer { SystemCalls.close(backup) }
        let tail = Array(bytes[min(damage.offset, bytes.count)..<min(damage.endOffset, bytes.count)])
        try SystemCalls.writeAll(backup, tail, at: 0, path: backupPath)
        try SystemCalls.fullSync(backup, path: backupPath)
        try SystemCalls.syncDirectory(directory)

        let fd = try SystemCalls.open(segment.path, O_WRONLY)
        defer { SystemCalls.close(fd) }
        try SystemCalls.truncate(fd, toSizeBytes: damage.offset, path: segment.path)
        try SystemCalls.fullSync(fd, path: segment.path)
        return TornTailCut(segment: segment.fileName, offset: damage.offset, sizeBytes: damage.sizeBytes,
                           reason: damage.reason, backupPath: backupPath)
    }

    /// Deletes, oldest first, the segments of `closed` whose every record is at or below
    /// `lsn`; a segment's last LSN is the next one's first LSN minus one, and the segment
    /// after the last of `closed` starts at `nextFirstLSN` (it is never deleted here).
    ///
    /// The directory is synced after each unlink so that a crash can never bring back an
    /// older segment without the newer ones (which would read as a gap). A failed delete
    /// stops the pass; the next call retries it. Leftover segments are harmless.
    static func deleteOldest(_ closed: [SegmentEntry], followedBy nextFirstLSN: LSN, through lsn: LSN,
                             directory: String) -> LogTruncation {
        var result = LogTruncation()
        for (index, segment) in closed.enumerated() {
            let lastLSN = (index + 1 < closed.count ? closed[index + 1].firstLSN : nextFirstLSN) - 1
            guard lastLSN <= lsn else { break }
            do {
                try SystemCalls.unlink(segment.path)
                try SystemCalls.syncDirectory(directory)
            } catch {
                result.failure = error.description
                break
            }
            result.deletedSegments.append(segment.fileName)
            result.deletedSizeBytes += segment.sizeBytes
            result.deletedThroughLSN = lastLSN
        }
        return result
    }

    /// `deleteOldest` for a log that is not open (`tally recover`, which holds the lock):
    /// the inspected segments, never the last one.
    public static func deleteApplied(_ inspection: LogInspection, through lsn: LSN) -> LogTruncation {
        let entries = inspection.segments.compactMap { segment -> SegmentEntry? in
            guard let scan = segment.scan else { return nil }
            return SegmentEntry(fileName: segment.fileName, path: segment.path,
                                firstLSN: scan.header.firstLSN, sizeBytes: segment.sizeBytes)
        }
        guard entries.count == inspection.segments.count, let last = entries.last else { return LogTruncation() }
        return deleteOldest(Array(entries.dropLast()), followedBy: last.firstLSN, through: lsn,
                            directory: inspection.directory)
    }
}

/// Finds the log for operator commands that are handed "a segment file or a data dir".
public enum LogLocation {
    /// The directory the daemon keeps its segments in, below its `--data-dir`.
    public static let walDirectoryName = "wal"

    /// The directory holding the log's segments for `path`: `path` itself when it holds
    /// segments, else `path/wal` when segments are in or below it, else the first directory
    /// below `path` (three levels at most) that holds segments. Nil when there is none.
    public static func segmentDirectory(for path: String) -> String? {
        search(path, depth: 0)
    }

    private static func search(_ directory: String, depth: Int) -> String? {
        guard depth <= 3, SystemCalls.isDirectory(directory),
              let names = try? SystemCalls.listDirectory(directory) else { return nil }
        if names.contains(where: { SegmentName.firstLSN(of: $0) != nil }) { return directory }
        // A daemon's data directory: its log is `wal/` itself, even when segments were moved
        // below it (the inspection of `wal/` then reports them instead of hiding the move).
        let wal = directory + "/" + walDirectoryName
        if names.contains(walDirectoryName), search(wal, depth: depth + 1) != nil { return wal }
        for name in names.sorted() where name != walDirectoryName && !name.hasPrefix(".") {
            if let found = search(directory + "/" + name, depth: depth + 1) { return found }
        }
        return nil
    }
}

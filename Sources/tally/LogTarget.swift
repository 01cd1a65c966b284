import TallyLog

/// Resolves the `<segment or dir>` argument of the log tools.
enum LogTarget {
    /// The segment files to read: the file itself, or every segment of the log found in or
    /// below the directory (the daemon keeps them in `<data dir>/wal`).
    static func segmentPaths(for path: String) throws -> [String] {
        if path.hasSuffix(SegmentName.suffix) || path.hasSuffix(SegmentName.brokenSuffix) {
            return [path]
        }
        guard let directory = LogLocation.segmentDirectory(for: path) else {
            throw ToolError("no log segments (*\(SegmentName.suffix)) found in or below \(path)")
        }
        return try SegmentContents.segmentPaths(in: directory)
    }
}

struct ToolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A full read of a log directory: every segment scanned, every problem classified.
///
/// `Log.open` refuses any problem but a torn tail; `tally verify` prints them all; `tally
/// dump` lists the frames around them. All three read the log through this one type, so they
/// can never disagree about what is sound.
public struct LogInspection: Sendable {
    public struct Segment: Sendable {
        public var fileName: String
        public var path: String
        /// Nil when the header could not be read; `problems` says why.
        public var scan: SegmentScan?
        public var sizeBytes: Int
    }

    public var directory: String
    public var segments: [Segment]
    public var problems: [LogProblem]
    /// `*.wal.tmp` files: segments whose creation was interrupted. They never held data.
    public var temporaryFiles: [String]

    /// The LSN the next append would take (1 for an empty log).
    public var nextLSN: LSN {
        segments.last?.scan?.nextLSN ?? 1
    }

    /// True when every segment and frame is sound (a torn tail counts as a problem here).
    public var isSound: Bool { problems.isEmpty }

    /// The problems that stop the log from opening: all but a torn tail of the last segment.
    public var corruption: [LogProblem] { problems.filter { $0.kind == .corruption } }

    /// The torn tail of the last segment, if it has one.
    public var tornTail: (segment: Segment, damage: SegmentDamage)? {
        guard let last = segments.last, let damage = last.scan?.damage.last, !damage.followedByValidFrame else {
            return nil
        }
        return (last, damage)
    }

    /// Reads and classifies every segment in `directory`. When `nodeID` is given, segments of
    /// another node are corruption; otherwise all segments must agree with the first.
    public static func inspect(directory: String, nodeID: LogKey? = nil) throws(LogError) -> LogInspection {
        let names = try SystemCalls.listDirectory(directory)
        let segmentNames = names.filter { SegmentName.firstLSN(of: $0) != nil }.sorted()
        var inspection = LogInspection(
            directory: directory, segments: [], problems: [],
            temporaryFiles: names.filter { $0.hasSuffix(SegmentName.temporarySuffix) }.sorted())

        for name in names.sorted() where !name.hasPrefix(".") {
            let path = directory + "/" + name
            guard SystemCalls.isDirectory(path), let nested = LogLocation.segmentDirectory(for: path) else { continue }
            // The daemon reads only this directory: segments below it are invisible to it, and
            // an empty-looking log would hand out their LSNs again.
            inspection.problems.append(LogProblem(
                kind: .corruption, segment: name + "/", offset: nil, lsn: nil,
                message: "segments found in the subdirectory \(nested): a log keeps all its segments in "
                    + "\(directory) itself; move them back there (or out of \(directory)) before starting"))
        }

        var expectedNode = nodeID
        var previousEnd: LSN?
        for (index, name) in segmentNames.enumerated() {
            let path = directory + "/" + name
            let bytes = try SystemCalls.readFile(path)
            let isLast = index == segmentNames.count - 1
            let segment = bytes.withUnsafeBytes { raw in
                inspectSegment(raw, name: name, path: path, isLast: isLast,
                               expectedNode: &expectedNode, previousEnd: previousEnd,
                               problems: &inspection.problems)
            }
            previousEnd = segment.scan?.nextLSN
            inspection.segments.append(segment)
        }
        return inspection
    }

    private static func inspectSegment(
        _ bytes: UnsafeRawBufferPointer, name: String, path: String, isLast: Bool,
        expectedNode: inout LogKey?, previousEnd: LSN?, problems: inout [LogProblem]
    ) -> Segment {
        let nameLSN = SegmentName.firstLSN(of: name)!
        var segment = Segment(fileName: name, path: path, scan: nil, sizeBytes: bytes.count)
        func corruption(_ offset: Int?, _ lsn: LSN?, _ message: String) {
            problems.append(LogProblem(kind: .corruption, segment: name, offset: offset, lsn: lsn, message: message))
        }

        let header: SegmentHeader
        do {
            header = try SegmentHeader(decoding: bytes)
        } catch {
            corruption(0, nameLSN, error.description)
            return segment
        }
        if header.firstLSN != nameLSN {
            corruption(0, header.firstLSN, "header says first LSN \(header.firstLSN) but the file name says \(nameLSN)")
        }
        if let node = expectedNode, node != header.nodeID {
            corruption(0, header.firstLSN, "segment belongs to node \(header.nodeID.uuidString), not \(node.uuidString)")
        }
        expectedNode = expectedNode ?? header.nodeID
        if let previousEnd, previousEnd != header.firstLSN {
            corruption(0, previousEnd, "LSN gap: the previous segment ends before LSN \(previousEnd) "
                + "but this one starts at LSN \(header.firstLSN) (a missing or cut segment)")
        }

        let scan = SegmentScanner.scan(bytes, fileName: name, header: header)
        for (index, damage) in scan.damage.enumerated() {
            let isTornTail = isLast && index == scan.damage.count - 1 && !damage.followedByValidFrame
            let kind: LogProblem.Kind = isTornTail ? .tornTail : .corruption
            var message = damage.reason
            if isTornTail {
                message += "; \(damage.sizeBytes) bytes after the last valid frame"
            } else if !damage.followedByValidFrame {
                message += " (not the last segment, so this was once durable data)"
            } else {
                message += " (valid frames follow, so this was once durable data)"
            }
            problems.append(LogProblem(kind: kind, segment: name, offset: damage.offset,
                                       lsn: damage.expectedLSN, message: message))
        }
        segment.scan = scan
        return segment
    }
}

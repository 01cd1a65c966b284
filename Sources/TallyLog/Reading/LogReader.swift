/// Reads records in LSN order from a log directory, for replay, recovery and tools.
///
/// It reads the files, not the writer's memory, so it works on a log another process is
/// writing: pass `through:` the writer's durable LSN to stop before frames still in flight.
/// Damage before that point is an error, never skipped silently.
public struct LogReader: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// Calls `body` for every record with `from ≤ LSN ≤ through` (`from` nil: the first record
    /// on disk), in order, and returns how
    /// many it visited. A torn tail at the end of the last segment ends the log; any other
    /// damage at or below `through` throws `LogReadError` before that segment's records
    /// are visited. So does a log whose first record on disk comes after `from`: the records
    /// asked for were deleted, and a caller must never mistake the next ones for them.
    @discardableResult
    public func forEachRecord(
        from requestedFirst: LSN? = nil, through last: LSN = .max,
        _ body: (LSN, LogRecord) throws -> Void
    ) throws -> Int {
        try forEachEntry(from: requestedFirst, through: last) { entry in
            if case .record(let lsn, let record) = entry { try body(lsn, record) }
        }
    }

    /// `forEachRecord`, with the request entries (format v2) too: each before the records it
    /// covers, for the requests that start within `from…through`. Returns the records visited.
    @discardableResult
    public func forEachEntry(
        from requestedFirst: LSN? = nil, through last: LSN = .max,
        _ body: (LogEntry) throws -> Void
    ) throws -> Int {
        precondition((requestedFirst ?? 1) >= 1, "LSNs start at 1")
        let first = requestedFirst ?? 1
        let names = try SystemCalls.listDirectory(directory)
            .filter { SegmentName.firstLSN(of: $0) != nil }
            .sorted()
        var decoder = FrameDecoder()
        var visited = 0
        var nextToVisit: LSN? = requestedFirst
        var expected: LSN? = nil
        for (index, name) in names.enumerated() {
            let isLastSegment = index == names.count - 1
            // A segment ends where the next begins; skip those wholly before `first`.
            if !isLastSegment, let nextFirst = SegmentName.firstLSN(of: names[index + 1]), nextFirst <= first {
                continue
            }
            if let segmentFirst = SegmentName.firstLSN(of: name), segmentFirst > last { break }
            let bytes = try SystemCalls.readFile(directory + "/" + name)
            expected = try bytes.withUnsafeBytes { raw throws -> LSN in
                let header: SegmentHeader
                do {
                    header = try SegmentHeader(decoding: raw)
                } catch {
                    throw LogReadError(segment: name, offset: 0, lsn: expected ?? first, message: String(describing: error))
                }
                if let expected, header.firstLSN != expected {
                    throw LogReadError(segment: name, offset: 0, lsn: expected,
                                       message: "LSN gap: segment starts at LSN \(header.firstLSN)")
                }
                let scan = SegmentScanner.scan(raw, fileName: name, header: header)
                for damage in scan.damage where damage.expectedLSN <= last {
                    let endsTheLog = isLastSegment && !damage.followedByValidFrame
                    if !endsTheLog {
                        throw LogReadError(segment: name, offset: damage.offset, lsn: damage.expectedLSN,
                                           message: damage.reason)
                    }
                }
                for frame in scan.frames {
                    if frame.header.firstLSN > last { break }
                    if frame.header.lastLSN < first { continue }
                    try decoder.forEachEntry(in: raw, frame: frame) { entry in
                        switch entry {
                        case .request(let request):
                            if request.firstLSN >= first && request.firstLSN <= last { try body(entry) }
                        case .record(let lsn, _):
                            guard lsn >= first && lsn <= last else { return }
                            if let expected = nextToVisit, lsn != expected {
                                throw LogReadError(segment: name, offset: frame.offset, lsn: expected,
                                                   message: "records \(expected)…\(lsn - 1) are not on disk "
                                                       + "(the log now starts at LSN \(lsn))")
                            }
                            try body(entry)
                            visited += 1
                            nextToVisit = lsn + 1
                        }
                    }
                }
                return scan.nextLSN
            }
        }
        return visited
    }
}

/// Damage met while reading records that were expected to be sound.
public struct LogReadError: Error, CustomStringConvertible {
    public var segment: String
    public var offset: Int
    public var lsn: LSN
    public var message: String
    public var description: String { "\(segment) offset \(offset) (LSN \(lsn)): \(message)" }
}

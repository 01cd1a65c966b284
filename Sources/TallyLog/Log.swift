/// Tally's write-ahead log: segmented, lz4-compressed, group-committed with fdatasync.
///
/// ```swift
/// let log = try Log.open(LogConfiguration(directory: "data/wal", nodeID: node))
/// let lsn = try await log.append([record])   // returns once the record is on disk
/// ```
///
/// Opening takes an exclusive lock on the directory, scans every segment, cuts a torn tail
/// off the last one (keeping the cut bytes beside it as `.broken`), and refuses anything
/// else that is wrong: see `LogInspection`. The log knows nothing of HTTP, JSON or SQL.
public final class Log: Sendable {
    public let configuration: LogConfiguration
    /// What opening found and did.
    public let openReport: LogOpenReport
    private let writer: LogWriter

    private init(configuration: LogConfiguration, openReport: LogOpenReport, writer: LogWriter) {
        self.configuration = configuration
        self.openReport = openReport
        self.writer = writer
    }

    /// Opens (or creates) the log in `configuration.directory`. Blocking: call it from a
    /// thread that may block, or before the server's event loops start.
    public static func open(_ configuration: LogConfiguration) throws(LogError) -> Log {
        configuration.validate()
        let directory = configuration.directory
        try SystemCalls.makeDirectory(directory)
        let lock = try DirectoryLock(directory: directory)

        var report = LogOpenReport()
        var inspection = try LogInspection.inspect(directory: directory, nodeID: configuration.nodeID)
        for name in inspection.temporaryFiles {
            try SystemCalls.unlink(directory + "/" + name)
            report.removedTemporaryFiles.append(name)
        }
        if !inspection.temporaryFiles.isEmpty { try SystemCalls.syncDirectory(directory) }
        guard inspection.corruption.isEmpty else {
            throw .corrupt(directory: directory, problems: inspection.corruption)
        }
        if let (segment, damage) = inspection.tornTail {
            report.tornTail = try LogMaintenance.cutTornTail(segment: segment, damage: damage, directory: directory)
            let index = inspection.segments.count - 1
            inspection.segments[index].sizeBytes = damage.offset
            inspection.segments[index].scan?.damage.removeLast()
        }

        var entries = inspection.segments.map { segment in
            SegmentEntry(fileName: segment.fileName, path: segment.path,
                         firstLSN: segment.scan!.header.firstLSN, sizeBytes: segment.sizeBytes)
        }
        let active: ActiveSegment?
        if let last = entries.popLast() {
            let scan = inspection.segments.last!.scan!
            active = try ActiveSegment.reopen(last, frameCount: scan.frames.count, formatVersion: scan.header.version,
                                              nodeID: configuration.nodeID, directory: directory)
        } else if configuration.holdAppendsReason == nil {
            active = try ActiveSegment.create(directory: directory, nodeID: configuration.nodeID,
                                              firstLSN: configuration.firstLSN)
        } else {
            active = nil  // the first segment waits for `releaseAppends`, which names its LSN
        }
        let nextLSN = inspection.segments.isEmpty ? configuration.firstLSN : inspection.nextLSN
        report.foundSegments = !inspection.segments.isEmpty
        report.firstLSN = inspection.segments.first?.scan?.header.firstLSN
        report.segmentCount = entries.count + (active == nil ? 0 : 1)
        report.nextLSN = nextLSN

        let writer = LogWriter(configuration: configuration, lock: lock, closedSegments: entries,
                               active: active, nextLSN: nextLSN, hold: configuration.holdAppendsReason)
        writer.start()
        return Log(configuration: configuration, openReport: report, writer: writer)
    }

    /// Appends `records` as one unit (they land in one frame) and returns the LSN of the
    /// last one once an fdatasync covering them has returned. Throws `LogError`: `.full`,
    /// `.overloaded`, `.batchTooLarge` refuse before anything is written; `.diskFull` refuses
    /// until space returns; `.stopped` and `.closed` mean the log takes nothing more.
    @discardableResult
    public func append(_ records: [LogRecord], tag: RequestTag? = nil) async throws -> LSN {
        try await writer.append(Append(records: records, tag: tag))
    }

    @discardableResult
    public func append(_ record: LogRecord) async throws -> LSN {
        try await writer.append(Append(records: [record]))
    }

    /// Appends one record without suspending: `completion` gets the record's LSN once it is
    /// durable, or why it was refused. It runs on the log's writer thread (or at once on the
    /// calling thread when the append is refused before queueing), so it must be quick and
    /// must not block: hand the result to where it is needed and return.
    public func append(_ record: LogRecord, completion: @escaping @Sendable (Result<LSN, LogError>) -> Void) {
        writer.enqueue(Append(records: [record]), completion: .call(completion))
    }

    /// `append(_:completion:)` for several records as one unit (one frame), with an optional
    /// request tag: `completion` gets the LSN of the last record.
    public func append(_ append: Append, completion: @escaping @Sendable (Result<LSN, LogError>) -> Void) {
        writer.enqueue(append, completion: .call(completion))
    }

    /// The highest LSN known to be on disk.
    public var durableLSN: LSN { writer.durableLSN }

    /// The first LSN still on disk (the oldest segment's first LSN), nil while the log has
    /// no segment. Records before it were deleted after a checkpoint applied them.
    public var firstLSNOnDisk: LSN? { writer.firstLSNOnDisk }

    /// Bytes in all segments, the figure the disk budget applies to.
    public var sizeBytes: Int { writer.logSizeBytes }

    /// Segment files on disk, the active one included.
    public var segmentCount: Int { writer.segmentsOnDisk }

    /// Why the log stopped taking appends, or nil while it is writable.
    public var stopReason: LogError? { writer.stopReason }

    /// Why appends are refused for lack of disk space (`LogError.diskFull`), or nil. Unlike
    /// `stopReason` this passes by itself: the writer probes and takes appends again.
    public var diskFullReason: LogError? { writer.diskFullReason }

    /// Whether an append now would be taken: not stopped, not out of disk space, not held,
    /// not over the disk budget.
    public var acceptsAppends: Bool {
        if let limit = configuration.maxLogSizeBytes, sizeBytes > limit { return false }
        return stopReason == nil && diskFullReason == nil && holdReason == nil
    }

    /// Why the owner holds appends back (`holdAppends`), or nil while they are taken.
    public var holdReason: String? { writer.holdReason }

    /// Refuses appends from now on with `LogError.appendsHeld(reason)`, until
    /// `releaseAppends`. Appends already queued are still written and acknowledged.
    public func holdAppends(reason: String) {
        writer.holdAppends(reason: reason)
    }

    /// Takes appends again, continuing after `lsn`, and returns the LSN the next append
    /// takes. A log that has no segment yet (opened held on an empty directory) starts its
    /// first one at `lsn + 1`; a log whose end is before `lsn` throws `.endsBefore` and stays
    /// held, because continuing would hand out LSNs that already mean something else.
    @discardableResult
    public func releaseAppends(continuingAfter lsn: LSN) async throws -> LSN {
        try await writer.release(continuingAfter: lsn)
    }

    /// Starts a new segment so that everything before it can be deleted once applied.
    /// Returns the new active segment's first LSN. Does nothing if the active segment has
    /// no frames yet, so idle checkpoints create no files.
    @discardableResult
    public func rollSegment() async throws -> LSN {
        try await writer.roll()
    }

    /// Deletes whole closed segments whose records are all at or below `lsn` (the LSN a
    /// checkpoint read back from PostgreSQL). Never touches the active segment.
    @discardableResult
    public func truncate(through lsn: LSN) async throws -> LogTruncation {
        try await writer.truncate(through: lsn)
    }

    /// Flushes what is queued, closes the files and releases the directory lock.
    public func close() async {
        await writer.close()
    }
}

/// What `Log.open` found and did.
public struct LogOpenReport: Sendable, Equatable {
    /// Whether the directory held any segment when it was opened.
    public var foundSegments = false
    /// The first LSN still on disk (the first segment's), nil when there was no segment.
    public var firstLSN: LSN?
    public var segmentCount = 0
    /// The LSN the next append takes.
    public var nextLSN: LSN = 1
    /// Set when the last segment ended in an interrupted write that was cut off.
    public var tornTail: TornTailCut?
    /// Interrupted segment creations that were removed.
    public var removedTemporaryFiles: [String] = []
}

/// A torn tail cut from the last segment at open.
public struct TornTailCut: Sendable, Equatable, CustomStringConvertible {
    public var segment: String
    public var offset: Int
    public var sizeBytes: Int
    public var reason: String
    /// Where the cut bytes were saved.
    public var backupPath: String

    public var description: String {
        "cut a torn tail of \(sizeBytes) bytes from \(segment) at offset \(offset) (\(reason)); "
            + "the bytes are saved in \(backupPath)"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

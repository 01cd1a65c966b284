/// How a `Log` lays out and bounds its files and its group commit.
public struct LogConfiguration: Sendable {
    /// The directory that holds the segments (the daemon uses `<data dir>/wal`).
    public var directory: String
    /// Written into every segment header; a log of another node refuses to open.
    public var nodeID: LogKey
    /// A segment rolls before a frame would take it past this size.
    public var segmentSizeBytes: Int = 64 << 20
    /// Upper bound on records in one frame (one group-commit batch). An append never
    /// splits across frames, so it is also the largest single append.
    public var maxBatchRecords: Int = 16_384
    /// Upper bound on records waiting for the writer. Past it appends fail at once with
    /// `LogError.overloaded` rather than queueing without limit.
    public var maxQueuedRecords: Int = 1 << 20
    /// Disk budget for the whole log. Past it appends fail with `LogError.full` until
    /// truncation frees space. Nil means no budget.
    public var maxLogSizeBytes: Int?
    /// The first LSN of the first segment when the directory holds none.
    public var firstLSN: LSN = 1
    /// When set, the log opens holding appends back with this reason (they fail with
    /// `LogError.appendsHeld`) until `Log.releaseAppends(continuingAfter:)`. An empty
    /// directory then gets its first segment only at that call, at the LSN it names, so
    /// nothing on disk claims an LSN before the owner knows where LSNs continue.
    public var holdAppendsReason: String?
    /// Fault injection for tests: consulted before each frame write and fdatasync.
    public var faults: LogFaults?
    /// Called on the writer thread with each frame right after the fdatasync that made it
    /// durable and before its appenders resume. It must not block: the compactor uses it to
    /// keep its sums in step with the durable log, the server to measure the writer.
    public var onDurable: (@Sendable (DurableFrame) -> Void)?
    /// While the disk is full, how often the writer probes for space (it writes and deletes
    /// a probe file as large as the frame that did not fit, at least `spaceProbeSizeBytes`).
    public var spaceProbeInterval: Duration = .seconds(1)
    public var spaceProbeSizeBytes: Int = 1 << 20
    /// Called on the writer thread when the log's writability changes (disk full, space
    /// back, stopped for good). It must not block; the daemon logs it and, on `.stopped`,
    /// shuts down so that a supervisor restarts it into recovery.
    public var onStateChange: (@Sendable (LogStateChange) -> Void)?

    public init(directory: String, nodeID: LogKey) {
        self.directory = directory
        self.nodeID = nodeID
    }

    func validate() {
        precondition(segmentSizeBytes >= SegmentHeader.sizeBytes + FrameHeader.sizeBytes, "segment size too small")
        precondition(maxBatchRecords >= 1 && maxBatchRecords <= FrameHeader.maxRecordCount, "batch bound out of range")
        precondition(maxQueuedRecords >= maxBatchRecords, "the queue must hold at least one full batch")
        precondition(firstLSN >= 1, "LSNs start at 1")
    }
}

/// A change in whether the log takes appends, as `LogConfiguration.onStateChange` sees it.
public enum LogStateChange: Sendable, Equatable {
    /// A write found the disk full; appends are refused with `.diskFull` until space returns.
    case diskFull(LogError)
    /// A probe found space again: appends are taken again.
    case spaceReturned
    /// A write or fdatasync failed for good: the log takes nothing more until reopened.
    case stopped(LogError)
}

/// Failures a test can inject into the writer, to prove what happens when the disk fails.
/// They stand in for the kernel's answer; the real write and fdatasync still run otherwise.
public struct LogFaults: Sendable {
    public enum WriteAction: Sendable {
        case proceed
        /// The write fails with this errno before any byte is written.
        case fail(errno: Int32)
        /// The first `bytes` of the frame reach the file, then the write fails (a torn write).
        case tear(afterBytes: Int, errno: Int32)
    }

    /// Called with the frame size before each frame write.
    public var write: @Sendable (_ frameSizeBytes: Int) -> WriteAction
    /// Called before each fdatasync; a non-nil errno makes it fail after the real call.
    public var sync: @Sendable () -> Int32?
    /// Called before each space probe while the disk is full; a non-nil errno fails it.
    public var probe: @Sendable () -> Int32?

    public init(
        write: @escaping @Sendable (Int) -> WriteAction = { _ in .proceed },
        sync: @escaping @Sendable () -> Int32? = { nil },
        probe: @escaping @Sendable () -> Int32? = { nil }
    ) {
        self.write = write
        self.sync = sync
        self.probe = probe
    }
}

/// A frame that just became durable, as `LogConfiguration.onDurable` sees it.
public struct DurableFrame: Sendable {
    public var firstLSN: LSN
    /// The appends of the frame, in LSN order, each with its request tag if it has one.
    public var appends: [Append]
    public var recordCount: Int
    /// Bytes of the frame on disk (header and payload).
    public var sizeBytes: Int
    /// How long the write and fdatasync of this frame took.
    public var writeAndSyncDuration: Duration
}

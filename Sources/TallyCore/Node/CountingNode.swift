import Foundation
import Logging
import TallyLog

/// A node's counting machinery wired together: identity, log, compactor and checkpointer.
///
/// `start` is the daemon's startup recovery: lock and scan the log (cutting a torn tail),
/// hook the compactor to the writer, and hand the checkpointer the job of reading the
/// checkpoint LSN and replaying the log after it. It does not wait for PostgreSQL: appends
/// are served at once when the log can prove that its end is not behind the node's stored
/// checkpoint — an id this start drew at random, or a log that reaches the highest LSN its
/// fence says was ever sent to PostgreSQL. Any other log (a new disk for a known id, an
/// emptied or restored `wal/`, a cut tail) holds its appends until the first checkpoint
/// pass has read the stored LSN; its LSNs then continue after it (`NodePosition`).
public final class CountingNode: Sendable {
    public let identity: NodeIdentity
    public let log: Log
    public let compactor: Compactor
    public let checkpointer: Checkpointer
    /// The request ids this node took recently (idempotent retries), rebuilt from the log.
    public let requestWindow: RequestWindow
    private let logger: Logger

    public struct Options: Sendable {
        public var dataDirectory: String
        public var requestedNodeID: UUID?
        public var segmentSizeBytes: Int = 64 << 20
        public var maxLogSizeBytes: Int?
        public var checkpointInterval: Duration = .seconds(9)
        /// Checkpoints whose segments stay on disk (see `CheckpointerConfiguration`).
        public var keepCheckpoints = 1
        /// How long a request id counts as taken, and how many this node remembers itself.
        public var requestRetention: Duration = .seconds(24 * 3600)
        public var maxRecentRequests = 200_000
        /// The compactor's memory bound: pending (key, day) entries held at most (see `Compactor`).
        public var maxPendingKeys = CountingNode.defaultMaxPendingKeys
        /// Also told of every durable frame (after the compactor), e.g. for metrics. Must not block.
        public var frameObserver: (@Sendable (DurableFrame) -> Void)?
        /// Injected disk failures, for tests (see `LogFaults`).
        public var logFaults: LogFaults?
        /// Told of every committed checkpoint transaction (metrics). Must not block.
        public var onCheckpointCommit: (@Sendable (CheckpointCommit) -> Void)?
        /// How often a log that found the disk full probes for space.
        public var spaceProbeInterval: Duration = .seconds(1)
        /// Also told when the log's writability changes (after it is logged here), e.g. so
        /// that the daemon shuts down when the log stops for good. Must not block.
        public var onLogStateChange: (@Sendable (LogStateChange) -> Void)?

        public init(dataDirectory: String) {
            self.dataDirectory = dataDirectory
        }

        public var walDirectory: String { dataDirectory + "/" + LogLocation.walDirectoryName }
    }

    /// About 1 GiB of table (69 bytes per pending key measured, BENCHMARKS.md), plus as much
    /// again at most while a checkpoint of a full table is in flight.
    public static let defaultMaxPendingKeys = 15_000_000

    private init(identity: NodeIdentity, log: Log, compactor: Compactor, checkpointer: Checkpointer,
                 requestWindow: RequestWindow, logger: Logger) {
        self.identity = identity
        self.log = log
        self.compactor = compactor
        self.checkpointer = checkpointer
        self.requestWindow = requestWindow
        self.logger = logger
    }

    public static func start(_ options: Options, sink: any CheckpointSink, logger: Logger) async throws -> CountingNode {
        let identity = try NodeIdentity.loadOrCreate(dataDirectory: options.dataDirectory,
                                                     requested: options.requestedNodeID)
        let fence = try CheckpointFence(dataDirectory: options.dataDirectory)
        if identity.origin == .generated { try fence.reset() }  // a new id has checkpointed nothing

        let window = RequestWindow(retention: options.requestRetention, maxEntries: options.maxRecentRequests)
        let compactor = Compactor(reader: LogReader(directory: options.walDirectory), maxPendingKeys: options.maxPendingKeys,
                                  onRequest: { window.remember($0) })
        var configuration = LogConfiguration(directory: options.walDirectory, nodeID: LogKey(identity.id))
        configuration.segmentSizeBytes = options.segmentSizeBytes
        configuration.maxLogSizeBytes = options.maxLogSizeBytes
        configuration.holdAppendsReason = Checkpointer.waitingReason
        configuration.faults = options.logFaults
        configuration.spaceProbeInterval = options.spaceProbeInterval
        let onStateChange = options.onLogStateChange
        configuration.onStateChange = { change in
            switch change {
            case .diskFull(let error):
                logger.warning("disk full: increments get 503 until space returns; nothing is lost",
                               metadata: ["error": "\(error)"])
            case .spaceReturned:
                logger.notice("disk space returned: taking increments again")
            case .stopped(let error):
                logger.critical("the log stopped after a disk error; shutting down for a restart into recovery",
                                metadata: ["error": "\(error)"])
            }
            onStateChange?(change)
        }
        let observer = options.frameObserver
        configuration.onDurable = { frame in
            compactor.absorb(frame)
            observer?(frame)
        }

        let opening = BlockingExecutor(name: "tally-log-open", maxQueuedJobs: 1)
        defer { opening.shutdown() }
        let log = try await opening.run { [configuration] in try Log.open(configuration) }
        let report = log.openReport
        if let torn = report.tornTail {
            logger.warning("log had a torn tail", metadata: ["detail": "\(torn)"])
        }
        for name in report.removedTemporaryFiles {
            logger.notice("removed an interrupted segment creation", metadata: ["file": "\(name)"])
        }
        if let proof = provenPosition(identity: identity, fence: fence.marks, report: report) {
            try await log.releaseAppends(continuingAfter: proof)
        } else {
            logger.notice("appends wait until PostgreSQL says where this node's LSNs continue", metadata: [
                "node": "\(identity.id.uuidString.lowercased())", "origin": "\(identity.origin)"])
        }
        logger.info("log opened", metadata: [
            "node": "\(identity.id.uuidString.lowercased())", "segments": "\(log.segmentCount)",
            "next_lsn": "\(report.nextLSN)", "origin": "\(identity.origin)",
            "taking_writes": "\(log.holdReason == nil)",
        ])

        var checkpointing = CheckpointerConfiguration(node: identity.id)
        checkpointing.interval = options.checkpointInterval
        checkpointing.keepCheckpoints = options.keepCheckpoints
        checkpointing.requestRetention = options.requestRetention
        checkpointing.onCommit = options.onCheckpointCommit
        if !checkpointing.keepsFreshnessBound {
            logger.warning("checkpoint interval is 10 s or more: PostgreSQL may be more than 10 s behind",
                           metadata: ["interval": "\(options.checkpointInterval)"])
        }
        let checkpointer = Checkpointer(log: log, compactor: compactor, sink: sink, fence: fence,
                                        configuration: checkpointing, logger: logger)
        return CountingNode(identity: identity, log: log, compactor: compactor, checkpointer: checkpointer,
                            requestWindow: window, logger: logger)
    }

    /// The LSN after which the log may take appends before PostgreSQL is read, when the log
    /// can prove that PostgreSQL's checkpoint is not ahead of it; nil when it cannot.
    static func provenPosition(identity: NodeIdentity, fence: CheckpointFence.Marks?, report: LogOpenReport) -> LSN? {
        switch identity.origin {
        case .generated:
            return 0  // nobody can have checkpointed an id drawn just now
        case .requested:
            return nil  // a known node on a new disk: its checkpoint may be anywhere
        case .stored:
            guard let fence else { return nil }  // no record of what was ever sent
            let logEnd = report.nextLSN - 1
            if !report.foundSegments { return fence.attempted == 0 ? 0 : nil }
            return logEnd >= fence.attempted ? fence.attempted : nil
        }
    }

    /// Runs the checkpointer until the task is cancelled.
    public func run() async {
        await checkpointer.run()
    }

    /// Graceful stop: the log stops taking appends and flushes those queued, then a final
    /// checkpoint puts every acknowledged increment into PostgreSQL. The log's lock is
    /// released when the log closes. Throws if the final checkpoint did not succeed in time
    /// (the log keeps everything; the next start or `tally recover` applies it).
    public func shutdown(finalCheckpointTimeout: Duration = .seconds(5)) async throws {
        await log.close()
        try await checkpointer.finalCheckpoint(timeout: finalCheckpointTimeout)
        logger.info("final checkpoint done", metadata: ["lsn": "\(checkpointer.status.checkpointLSN ?? 0)"])
    }
}

import Foundation
import Logging
import TallyLog

/// A node's counting machinery wired together: identity, log, compactor and checkpointer.
///
/// `start` is the daemon's startup recovery: lock and scan the log (cutting a torn tail),
/// hook the compactor to the writer, and hand the checkpointer the job of reading the
/// checkpoint LSN and replaying the log after it. It does not wait for PostgreSQL: the log
/// knows its own end, so appends are served at once and counting begins when the
/// checkpoint LSN can be read. The one exception is a node whose log directory is empty but
/// whose id is not new: its checkpoint may be ahead of LSN 1, so the log's first LSN must
/// come from PostgreSQL (next LSN = max(log end, checkpoint) + 1) before anything is appended.
public final class CountingNode: Sendable {
    public let identity: NodeIdentity
    public let log: Log
    public let compactor: Compactor
    public let checkpointer: Checkpointer
    private let logger: Logger

    public struct Options: Sendable {
        public var dataDirectory: String
        public var requestedNodeID: UUID?
        public var segmentSizeBytes: Int = 64 << 20
        public var maxLogSizeBytes: Int?
        public var checkpointInterval: Duration = .seconds(9)
        /// Also told of every durable frame (after the compactor), e.g. for metrics. Must not block.
        public var frameObserver: (@Sendable (DurableFrame) -> Void)?

        public init(dataDirectory: String) {
            self.dataDirectory = dataDirectory
        }

        public var walDirectory: String { dataDirectory + "/" + LogLocation.walDirectoryName }
    }

    private init(identity: NodeIdentity, log: Log, compactor: Compactor, checkpointer: Checkpointer, logger: Logger) {
        self.identity = identity
        self.log = log
        self.compactor = compactor
        self.checkpointer = checkpointer
        self.logger = logger
    }

    public static func start(_ options: Options, sink: any CheckpointSink, logger: Logger) async throws -> CountingNode {
        let identity = try NodeIdentity.loadOrCreate(dataDirectory: options.dataDirectory,
                                                     requested: options.requestedNodeID)
        let compactor = Compactor(reader: LogReader(directory: options.walDirectory))
        var configuration = LogConfiguration(directory: options.walDirectory, nodeID: LogKey(identity.id))
        configuration.segmentSizeBytes = options.segmentSizeBytes
        configuration.maxLogSizeBytes = options.maxLogSizeBytes
        let observer = options.frameObserver
        configuration.onDurable = { frame in
            compactor.absorb(frame)
            observer?(frame)
        }

        let hasSegments = (LogLocation.segmentDirectory(for: options.walDirectory) != nil)
        if !hasSegments && !identity.isNew {
            configuration.firstLSN = try await checkpointLSNWhenReachable(sink: sink, node: identity.id, logger: logger) + 1
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
        logger.info("log opened", metadata: [
            "node": "\(identity.id.uuidString.lowercased())", "segments": "\(report.segmentCount)",
            "next_lsn": "\(report.nextLSN)", "new_node": "\(identity.isNew)",
        ])

        var checkpointing = CheckpointerConfiguration(node: identity.id)
        checkpointing.interval = options.checkpointInterval
        if !checkpointing.keepsFreshnessBound {
            logger.warning("checkpoint interval is 10 s or more: PostgreSQL may be more than 10 s behind",
                           metadata: ["interval": "\(options.checkpointInterval)"])
        }
        let checkpointer = Checkpointer(log: log, compactor: compactor, sink: sink,
                                        configuration: checkpointing, logger: logger)
        return CountingNode(identity: identity, log: log, compactor: compactor, checkpointer: checkpointer,
                            logger: logger)
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

    /// Waits (with capped backoff) until the sink answers, for the one case that must.
    private static func checkpointLSNWhenReachable(sink: any CheckpointSink, node: UUID, logger: Logger) async throws -> LSN {
        var backoff = Duration.milliseconds(200)
        var attempts = 0
        while true {
            do {
                return try await sink.checkpointLSN(node: node)
            } catch {
                if attempts == 0 {
                    logger.warning(
                        "the log directory is empty but the node id is not new: waiting for PostgreSQL to learn where this node's LSNs continue",
                        metadata: ["error": "\(error)"])
                }
                attempts += 1
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }
}

import Foundation
import TallyLog

/// `tally recover`: applies what a stopped node's log holds after its checkpoint, offline.
///
/// It takes the log directory's lock (so it never runs beside a daemon), cuts a torn tail
/// the way the daemon would (keeping a `.broken` copy), applies every record after the
/// stored checkpoint LSN in compare-and-set transactions of at most `maxPendingKeys` rows
/// each (bounded memory on a log of any size), reads the LSN back, and deletes the segments
/// it covers, never the last one. On a corrupt log it applies the sound prefix
/// and stops before the first problem: nothing past a corruption is applied or deleted.
/// Running it again applies nothing, because the checkpoint LSN has moved.
///
/// It refuses, like the daemon (`NodePosition`), a log and a checkpoint that do not fit,
/// and offers the two explicit ways out an operator may choose:
/// - `acceptGap`: the checkpoint is before the first record on disk (PostgreSQL lost
///   commits whose segments are gone); apply what is on disk and move the checkpoint past
///   the gap, accepting that the totals miss the gap's records.
/// - `salvage`: keep records of a log whose node id PostgreSQL credits with more (another
///   data directory used the same id, or the log was restored): apply the log's records
///   from an LSN on under a new node id, whose checkpoint row then holds the log's end, so
///   a second run applies nothing and a daemon started with that id continues after it.
public struct Recovery {
    /// Apply the records from `fromLSN` on under `node` instead of the log's own id.
    public struct Salvage: Sendable, Equatable {
        public var fromLSN: LSN
        public var node: UUID

        public init(fromLSN: LSN, node: UUID) {
            self.fromLSN = fromLSN
            self.node = node
        }
    }

    public var walDirectory: String
    public var sink: any CheckpointSink
    public var dryRun: Bool
    /// The data directory's fence, kept in step with what recover stores (nil: none beside the log).
    public var fence: CheckpointFence?
    public var acceptGap = false
    public var salvage: Salvage?
    /// The memory bound: one slice (one transaction) holds at most this many (key, day) rows.
    public var maxPendingKeys = CountingNode.defaultMaxPendingKeys
    /// Told how far the apply has got, at most every `progressIntervalSeconds`.
    public var onProgress: ((ProgressReport.Point) -> Void)?
    public var progressIntervalSeconds = 5.0

    public init(walDirectory: String, sink: any CheckpointSink, dryRun: Bool, fence: CheckpointFence? = nil) {
        self.walDirectory = walDirectory
        self.sink = sink
        self.dryRun = dryRun
        self.fence = fence
    }

    public func run() async throws -> RecoveryReport {
        let lock = try DirectoryLock(directory: walDirectory)
        defer { lock.release() }

        var inspection = try LogInspection.inspect(directory: walDirectory)
        var report = RecoveryReport(dryRun: dryRun)
        guard let logNode = inspection.segments.lazy.compactMap({ $0.scan?.header.nodeID }).first?.uuid else {
            report.unrecoverable = inspection.corruption
            return report
        }
        let node = salvage?.node ?? logNode
        report.node = node

        if let (segment, damage) = inspection.tornTail {
            report.tornTailBytes = damage.sizeBytes
            if !dryRun {
                report.tornTailBackup = try LogMaintenance.cutTornTail(segment: segment, damage: damage,
                                                                       directory: walDirectory).backupPath
                inspection = try LogInspection.inspect(directory: walDirectory)
            }
        }
        report.unrecoverable = inspection.corruption
        // The sound prefix ends just before the first LSN any corruption touches.
        let firstBad = inspection.corruption.compactMap(\.lsn).min()
        let logEnd = inspection.nextLSN - 1
        let soundEnd = firstBad.map { min($0 - 1, logEnd) } ?? logEnd
        let firstOnDisk = inspection.segments.first?.scan?.header.firstLSN ?? 1

        let checkpoint = try await sink.checkpointLSN(node: node)
        report.checkpointLSNBefore = checkpoint
        report.checkpointLSNAfter = checkpoint

        let applyFrom: LSN
        if let salvage {
            guard salvage.node != logNode else { throw RecoveryError.salvageUnderOwnID(node: logNode) }
            guard salvage.fromLSN >= firstOnDisk else {
                throw RecoveryError.salvageBeforeLog(fromLSN: salvage.fromLSN, firstLSNOnDisk: firstOnDisk)
            }
            if checkpoint == soundEnd { return report }  // salvaged before: nothing more to do
            if checkpoint == 0 {
                applyFrom = salvage.fromLSN
            } else if checkpoint >= salvage.fromLSN && checkpoint < soundEnd {
                applyFrom = checkpoint + 1  // an earlier salvage stopped between slices: go on
            } else {
                throw RecoveryError.salvageNodeInUse(node: salvage.node, checkpointLSN: checkpoint)
            }
        } else {
            if let marks = fence?.marks, checkpoint > marks.attempted {
                throw RecoveryError.position(.movedElsewhere(storedLSN: checkpoint, knownLSN: marks.confirmed, logEnd: logEnd))
            }
            if checkpoint > logEnd {
                throw RecoveryError.position(.aheadOfLog(storedLSN: checkpoint, logEnd: logEnd, takenSinceStart: nil))
            }
            if checkpoint + 1 < firstOnDisk {
                guard acceptGap else {
                    throw RecoveryError.position(.recordsMissing(storedLSN: checkpoint, firstLSNOnDisk: firstOnDisk))
                }
                report.acceptedGap = (checkpoint + 1)...(firstOnDisk - 1)
                applyFrom = firstOnDisk
            } else {
                applyFrom = checkpoint + 1
            }
        }

        // In slices of at most `maxPendingKeys` keys, each its own compare-and-set
        // transaction, so memory stays bounded on a log of any size; a run interrupted
        // between slices is resumed by the next one from the LSN the last slice stored.
        let reader = LogReader(directory: walDirectory)
        let progress = ProgressReport(from: applyFrom, to: soundEnd, intervalSeconds: progressIntervalSeconds) { point in
            onProgress?(point)
        }
        var from = applyFrom
        var previous = checkpoint
        while from <= soundEnd {
            let slice = try LogSlice.read(from: reader, from: from, through: soundEnd, maxKeys: maxPendingKeys,
                                          onProgress: progress.reached)
            let table = slice.table
            report.records += Int(table.lastLSN - table.baseLSN)
            report.keys += table.keyCount
            report.slices += 1
            report.appliedLSNs = applyFrom...table.lastLSN
            if !dryRun {
                let ownsFence = salvage == nil
                if ownsFence { try fence?.recordAttempt(table.lastLSN) }
                var plan = try await CheckpointPlan.make(table: table, node: node, sink: sink, reader: reader, io: nil)
                plan.batch.previousLSN = previous  // across an accepted gap, or from a salvage row at 0
                report.requestsDropped += plan.droppedRequests.count
                try await sink.apply(plan.batch)
                previous = try await sink.checkpointLSN(node: node)
                report.checkpointLSNAfter = previous
                if ownsFence { try fence?.recordConfirmed(previous) }
            }
            from = table.lastLSN + 1
            progress.reached(table.lastLSN)
        }
        if !dryRun && salvage == nil {
            report.deletedSegments = LogMaintenance.deleteApplied(inspection, through: report.checkpointLSNAfter).deletedSegments
        }
        return report
    }
}

/// What `tally recover` did (or, with `--dry-run`, would do).
public struct RecoveryReport: Sendable, Equatable {
    public var dryRun: Bool
    public var node: UUID?
    public var checkpointLSNBefore: LSN = 0
    public var checkpointLSNAfter: LSN = 0
    public var appliedLSNs: ClosedRange<LSN>?
    /// With `acceptGap`: the LSNs that are in neither the log nor PostgreSQL.
    public var acceptedGap: ClosedRange<LSN>?
    public var records = 0
    /// (key, day) rows applied, summed over the slices (a key in two slices counts twice).
    public var keys = 0
    /// Transactions the apply took (one per slice).
    public var slices = 0
    /// Tagged requests not counted: their ids were already counted, or came twice.
    public var requestsDropped = 0
    public var tornTailBytes = 0
    public var tornTailBackup: String?
    public var deletedSegments: [String] = []
    /// Corruption past which nothing was applied; an operator must look at it.
    public var unrecoverable: [LogProblem] = []

    public init(dryRun: Bool) {
        self.dryRun = dryRun
    }
}

public enum RecoveryError: Error, CustomStringConvertible {
    /// The log and the checkpoint do not fit (the daemon refuses the same way).
    case position(NodePositionError)
    case salvageUnderOwnID(node: UUID)
    case salvageBeforeLog(fromLSN: LSN, firstLSNOnDisk: LSN)
    case salvageNodeInUse(node: UUID, checkpointLSN: LSN)

    public var description: String {
        switch self {
        case .position(.recordsMissing(let stored, let first)):
            "the checkpoint is at LSN \(stored) but the log starts at LSN \(first): records \(stored + 1)…\(first - 1) "
                + "are gone, so the totals cannot be made exact. Nothing was applied. Restore PostgreSQL to a state "
                + "that has them, or run again with --accept-gap to apply what the log holds and accept the loss."
        case .position(let error):
            error.description
        case .salvageUnderOwnID(let node):
            "--as-node must be a new id, not the log's own (\(node.uuidString.lowercased()))"
        case .salvageBeforeLog(let from, let first):
            "--salvage-from \(from) is before the first record on disk (LSN \(first))"
        case .salvageNodeInUse(let node, let lsn):
            "node \(node.uuidString.lowercased()) already has a checkpoint (LSN \(lsn)) that is not this log's end: "
                + "choose a new, unused id for --as-node"
        }
    }
}

import Foundation
import TallyLog

/// `tally recover`: applies what a stopped node's log holds after its checkpoint, offline.
///
/// It takes the log directory's lock (so it never runs beside a daemon), cuts a torn tail
/// the way the daemon would (keeping a `.broken` copy), applies every record after the
/// stored checkpoint LSN in one compare-and-set transaction, reads the LSN back, and deletes
/// the segments it covers, never the last one. On a corrupt log it applies the sound prefix
/// and stops before the first problem: nothing past a corruption is applied or deleted.
/// Running it again applies nothing, because the checkpoint LSN has moved.
public struct Recovery {
    public var walDirectory: String
    public var sink: any CheckpointSink
    public var dryRun: Bool

    public init(walDirectory: String, sink: any CheckpointSink, dryRun: Bool) {
        self.walDirectory = walDirectory
        self.sink = sink
        self.dryRun = dryRun
    }

    public func run() async throws -> RecoveryReport {
        let lock = try DirectoryLock(directory: walDirectory)
        defer { lock.release() }

        var inspection = try LogInspection.inspect(directory: walDirectory)
        var report = RecoveryReport(dryRun: dryRun)
        guard let node = inspection.segments.lazy.compactMap({ $0.scan?.header.nodeID }).first?.uuid else {
            report.unrecoverable = inspection.corruption
            return report
        }
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

        let checkpoint = try await sink.checkpointLSN(node: node)
        report.checkpointLSNBefore = checkpoint
        report.checkpointLSNAfter = checkpoint
        let firstOnDisk = inspection.segments.first?.scan?.header.firstLSN ?? 1
        guard checkpoint + 1 >= firstOnDisk else {
            throw RecoveryError.recordsMissing(checkpointLSN: checkpoint, firstLSNOnDisk: firstOnDisk)
        }

        if soundEnd > checkpoint {
            var table = DeltaTable(after: checkpoint)
            try LogReader(directory: walDirectory).forEachRecord(from: checkpoint + 1, through: soundEnd) { lsn, record in
                table.absorb(record, at: lsn)
            }
            guard table.lastLSN == soundEnd else {
                throw CompactorError.logEndsEarly(expectedThrough: soundEnd, foundThrough: table.lastLSN)
            }
            report.records = Int(table.lastLSN - table.baseLSN)
            report.keys = table.keyCount
            report.appliedLSNs = (checkpoint + 1)...soundEnd
            if !dryRun {
                try await sink.apply(CheckpointBatch(node: node, previousLSN: checkpoint, lsn: soundEnd,
                                                     deltas: table.sortedDeltas()))
                report.checkpointLSNAfter = try await sink.checkpointLSN(node: node)
            }
        }
        if !dryRun {
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
    public var records = 0
    public var keys = 0
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
    case recordsMissing(checkpointLSN: LSN, firstLSNOnDisk: LSN)

    public var description: String {
        switch self {
        case .recordsMissing(let checkpoint, let first):
            "the checkpoint is at LSN \(checkpoint) but the log starts at LSN \(first): "
                + "records \(checkpoint + 1)…\(first - 1) are gone, so the totals cannot be made exact"
        }
    }
}

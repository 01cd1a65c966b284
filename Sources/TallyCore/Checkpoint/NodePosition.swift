import Foundation
import TallyLog

/// Judges a checkpoint LSN read from PostgreSQL against what this node knows: its log and
/// its fence. Pure, so that every rule is unit-tested without a disk or a server.
///
/// The rules, from the invariant "every acknowledged increment is counted once":
/// - the log must hold every record after the stored LSN: `firstLSN − 1 ≤ stored`, or
///   records that PostgreSQL has not counted were deleted (`recordsMissing`);
/// - the stored LSN must not be past the log's end, or the log would hand out LSNs that
///   PostgreSQL already counts as applied (`aheadOfLog`) — except for a log with no
///   segment at all, which simply starts after the stored LSN (a node on a new disk);
/// - the stored LSN may only be one this node put there: at most its fence's `attempted`
///   at start; afterwards the LSN it knows, or the target of its one in-doubt COMMIT
///   (`movedElsewhere`: another process uses this node's id).
/// A stored LSN below what this node saw confirmed means PostgreSQL lost commits (a
/// restore, or a standby promoted without them): if the log still holds what follows, the
/// node replays it and the totals heal; that is reported, not refused.
public enum NodePosition {
    /// What the log holds, as far as the judgement needs it.
    public struct LogExtent: Sendable, Equatable {
        /// The first LSN on disk, nil when the log has no segment at all.
        public var firstLSN: LSN?
        /// The last durable LSN (the first LSN − 1 when the log holds no record).
        public var endLSN: LSN

        public init(firstLSN: LSN?, endLSN: LSN) {
            self.firstLSN = firstLSN
            self.endLSN = endLSN
        }
    }

    public enum Verdict: Sendable, Equatable {
        /// Count from `lsn` on. `regressedFrom` is set when PostgreSQL's LSN went back from it.
        case continueAfter(LSN, regressedFrom: LSN?)
        case refuse(NodePositionError)
    }

    /// The first read, at start. `fence` is nil for a data directory that has none yet.
    /// `takenSinceStart` are the LSNs appended before this check (when the log could prove
    /// its position locally), reported if the check fails after all.
    public static func atStart(stored: LSN, log: LogExtent, fence: CheckpointFence.Marks?,
                               takenSinceStart: ClosedRange<LSN>?) -> Verdict {
        if let fence, stored > fence.attempted {
            return .refuse(.movedElsewhere(storedLSN: stored, knownLSN: fence.confirmed, logEnd: log.endLSN))
        }
        guard let firstLSN = log.firstLSN else { return .continueAfter(stored, regressedFrom: nil) }
        if stored > log.endLSN {
            return .refuse(.aheadOfLog(storedLSN: stored, logEnd: log.endLSN, takenSinceStart: takenSinceStart))
        }
        if stored + 1 < firstLSN {
            return .refuse(.recordsMissing(storedLSN: stored, firstLSNOnDisk: firstLSN))
        }
        if let fence, stored < fence.confirmed {
            return .continueAfter(stored, regressedFrom: fence.confirmed)
        }
        return .continueAfter(stored, regressedFrom: nil)
    }

    /// A later read: after a COMMIT whose outcome is unknown (`inDoubtTarget`), after a
    /// compare-and-set that failed, or to confirm a commit. `known` is the LSN this node
    /// last saw stored or stored itself.
    public static func later(stored: LSN, known: LSN, inDoubtTarget: LSN?, log: LogExtent) -> Verdict {
        if stored == known || stored == inDoubtTarget { return .continueAfter(stored, regressedFrom: nil) }
        if stored > known {
            return .refuse(.movedElsewhere(storedLSN: stored, knownLSN: known, logEnd: log.endLSN))
        }
        if let firstLSN = log.firstLSN, stored + 1 < firstLSN {
            return .refuse(.recordsMissing(storedLSN: stored, firstLSNOnDisk: firstLSN))
        }
        return .continueAfter(stored, regressedFrom: known)
    }
}

/// Why a node stopped taking writes and counting: its log and PostgreSQL's checkpoint do
/// not fit together, and going on would lose or double acknowledged increments. Lasting:
/// it clears only when an operator acts and restarts the node (docs/operations.md).
public enum NodePositionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// PostgreSQL's checkpoint is past the log's end.
    case aheadOfLog(storedLSN: LSN, logEnd: LSN, takenSinceStart: ClosedRange<LSN>?)
    /// PostgreSQL's checkpoint is before the first record still on disk.
    case recordsMissing(storedLSN: LSN, firstLSNOnDisk: LSN)
    /// The checkpoint moved in a way this node did not cause.
    case movedElsewhere(storedLSN: LSN, knownLSN: LSN, logEnd: LSN)

    /// A short label for metrics and `/readyz`.
    public var kind: String {
        switch self {
        case .aheadOfLog: "checkpoint_ahead_of_log"
        case .recordsMissing: "records_missing"
        case .movedElsewhere: "checkpoint_moved_elsewhere"
        }
    }

    public var description: String {
        switch self {
        case .aheadOfLog(let stored, let end, let taken):
            var text = "PostgreSQL's checkpoint for this node is at LSN \(stored) but its log ends at LSN \(end): "
                + "the log is older than PostgreSQL's record of it (restored from a backup, a damaged tail cut, "
                + "or another data directory uses this node id). Taking writes would reuse LSNs PostgreSQL "
                + "already counts, so this node refuses writes."
            if let taken {
                text += " LSNs \(taken.lowerBound)…\(taken.upperBound) were acknowledged since this start and are "
                    + "not in PostgreSQL: keep them with `tally recover --salvage-from \(taken.lowerBound) --as-node <new uuid>`."
            }
            return text + " See docs/operations.md, \"Node position errors\"."
        case .recordsMissing(let stored, let first):
            return "PostgreSQL's checkpoint for this node is at LSN \(stored) but its log starts at LSN \(first): "
                + "records \(stored + 1)…\(first - 1) were applied and deleted, and PostgreSQL no longer has them "
                + "(restored from a backup, or a standby promoted without the last commits); the totals miss "
                + "them. This node refuses writes. Restore PostgreSQL to a state that has them, or accept the "
                + "loss: stop the node and run `tally recover <data dir> --accept-gap`. See docs/operations.md."
        case .movedElsewhere(let stored, let known, let end):
            let unapplied = end > known ? " LSNs \(known + 1)…\(end) of this log are not in PostgreSQL." : ""
            return "PostgreSQL's checkpoint for this node moved to LSN \(stored), which this node never wrote "
                + "(it knew LSN \(known)): another process uses the same node id (a cloned data directory?). "
                + "This node refuses writes and stops counting.\(unapplied) Give one of the two data directories "
                + "a new identity and keep its records with `tally recover --salvage-from \(known + 1) --as-node <new uuid>`. "
                + "See docs/operations.md, \"Node position errors\"."
        }
    }
}

/// Everything the log can refuse or fail with. Each case says what an operator can do.
public enum LogError: Error, Equatable, CustomStringConvertible {
    /// Another process (or another `Log` in this one) holds the directory's lock.
    case locked(directory: String, holderPID: Int32?)
    /// The log is damaged beyond a torn tail; it will not open until an operator acts.
    case corrupt(directory: String, problems: [LogProblem])
    /// A system call failed.
    case io(operation: String, path: String, errno: Int32)
    /// An fdatasync (or a write for another reason than a full disk) failed; the log accepts
    /// nothing more until reopened.
    case stopped(reason: String)
    /// The log was closed.
    case closed
    /// A write found the disk full (ENOSPC, EDQUOT) before any fdatasync of it: the partial
    /// frame was cut off, nothing of it is stored, and appends resume by themselves once a
    /// probe finds space again (`LogConfiguration.spaceProbeInterval`).
    case diskFull(reason: String)
    /// More records are waiting for a flush than the queue bound allows.
    case overloaded(queuedRecords: Int)
    /// The log's files exceed the disk budget; appends resume once a checkpoint truncates it.
    case full(logSizeBytes: Int, maxLogSizeBytes: Int)
    /// One append carried more records than fit in one frame.
    case batchTooLarge(recordCount: Int, maxRecordCount: Int)
    /// The log's owner holds appends back (`Log.holdAppends`): e.g. until it has learnt where
    /// the node's LSNs must continue, or for good after it found its position inconsistent.
    case appendsHeld(reason: String)
    /// `Log.releaseAppends(continuingAfter:)` was asked to continue after an LSN this log
    /// never reached: taking appends would reuse LSNs that already mean something else.
    case endsBefore(lsn: LSN, logEnd: LSN)

    public var description: String {
        switch self {
        case .locked(let directory, let pid):
            let holder = pid.map { " (held by process \($0))" } ?? ""
            return "the log directory \(directory) is locked by another Tally process\(holder); "
                + "stop it first: only one daemon or recover may use a data directory at a time"
        case .corrupt(let directory, let problems):
            let list = problems.map { "  - \($0)" }.joined(separator: "\n")
            return "the log in \(directory) is corrupt and was not opened; nothing was deleted.\n\(list)\n"
                + "Run `tally verify \(directory)` to list every problem, and `tally recover` to apply "
                + "what is sound to PostgreSQL."
        case .io(let operation, let path, let errno):
            return "\(operation) \(path) failed: \(String(cString: strerror(errno))) (errno \(errno))"
        case .stopped(let reason):
            return "the log stopped after a failed write and accepts nothing more: \(reason)"
        case .closed:
            return "the log is closed"
        case .diskFull(let reason):
            return "the disk is full (\(reason)); writes resume by themselves when space returns"
        case .overloaded(let queued):
            return "the log is overloaded (\(queued) records waiting for a flush)"
        case .full(let size, let limit):
            return "the log holds \(size) bytes, over its budget of \(limit) bytes; "
                + "appends resume when a checkpoint reaches PostgreSQL"
        case .batchTooLarge(let count, let limit):
            return "an append of \(count) records exceeds the frame limit of \(limit)"
        case .appendsHeld(let reason):
            return "the log takes no appends: \(reason)"
        case .endsBefore(let lsn, let logEnd):
            return "the log ends at LSN \(logEnd), before LSN \(lsn) where it was asked to continue"
        }
    }
}

/// One thing wrong with the log, located precisely enough to inspect with `tally dump`.
public struct LogProblem: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Damage at the very end of the last segment: an interrupted, never acknowledged write.
        case tornTail = "torn tail"
        /// Anything else: data that was once durable is unreadable, or the log has a hole.
        case corruption
    }

    public var kind: Kind
    /// The segment file name, or the directory for problems between segments.
    public var segment: String
    /// Byte offset in the segment, when the problem has one.
    public var offset: Int?
    /// The LSN expected at that point, when known.
    public var lsn: LSN?
    public var message: String

    public init(kind: Kind, segment: String, offset: Int?, lsn: LSN?, message: String) {
        self.kind = kind
        self.segment = segment
        self.offset = offset
        self.lsn = lsn
        self.message = message
    }

    public var description: String {
        var place = segment
        if let offset { place += " offset \(offset)" }
        if let lsn { place += " (LSN \(lsn))" }
        return "\(kind.rawValue): \(place): \(message)"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension LogError {
    /// Whether this failure is a full disk that the log can wait out: a write (not a sync)
    /// refused for lack of space. Nothing failed after the kernel took the bytes, so no
    /// acknowledged page can have been dropped, unlike after a failed fsync.
    var isOutOfSpace: Bool {
        guard case .io(let operation, _, let code) = self else { return false }
        return (code == ENOSPC || code == EDQUOT) && operation != "fdatasync" && operation != "fsync"
    }
}

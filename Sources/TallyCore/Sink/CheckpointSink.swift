import Foundation
import TallyLog

/// The sum of one key's increments on one UTC day since the last checkpoint.
///
/// 128 bits so that accumulation never wraps or traps: even 2^63 increments of Int64.max
/// to one key fit. PostgreSQL stores totals as `numeric`, which has no upper bound here.
public struct KeyDelta: Sendable, Equatable {
    public var key: LogKey
    public var day: Day
    public var sum: Int128

    public init(key: LogKey, day: Day, sum: Int128) {
        self.key = key
        self.day = day
        self.sum = sum
    }
}

/// A tagged request a checkpoint records in `tally_requests`, so that a retry of it on any
/// node is never counted again.
public struct RequestRow: Sendable, Equatable {
    public var id: String
    public var firstLSN: LSN
    public var count: Int
    public var digest: UInt64
    /// When the request was taken, ms since the epoch: rows are pruned by it.
    public var arrivalMillis: Int64

    public init(id: String, firstLSN: LSN, count: Int, digest: UInt64, arrivalMillis: Int64) {
        self.id = id
        self.firstLSN = firstLSN
        self.count = count
        self.digest = digest
        self.arrivalMillis = arrivalMillis
    }
}

/// One checkpoint: the deltas of every record in `(previousLSN, lsn]`, applied atomically
/// together with moving the node's checkpoint LSN from `previousLSN` to `lsn`, and the
/// rows of the tagged requests whose records the deltas count.
public struct CheckpointBatch: Sendable, Equatable {
    public var node: UUID
    /// The checkpoint LSN the batch continues from: the compare in compare-and-set.
    public var previousLSN: LSN
    /// The checkpoint LSN once the batch is applied.
    public var lsn: LSN
    /// Distinct (key, day) pairs, sorted by key then day (`LogKey` order is PostgreSQL's
    /// `uuid` order), so that every node takes row locks in the same order and two
    /// checkpoints never deadlock.
    public var deltas: [KeyDelta]
    /// Sorted by id (every node inserts in that order: no deadlock), none known to the sink.
    public var requests: [RequestRow]

    public init(node: UUID, previousLSN: LSN, lsn: LSN, deltas: [KeyDelta], requests: [RequestRow] = []) {
        precondition(lsn >= previousLSN, "a checkpoint never moves backwards")
        self.node = node
        self.previousLSN = previousLSN
        self.lsn = lsn
        self.deltas = deltas
        self.requests = requests
    }
}

/// Where checkpoints go. `TallyPostgres` implements it over libpq; tests wrap it to inject
/// faults (a sink that commits and then reports failure).
///
/// Implementations must not block the caller's thread: libpq calls run on a thread of their own.
public protocol CheckpointSink: Sendable {
    /// The node's checkpoint LSN (0 when the node has never checkpointed; the row is then created).
    func checkpointLSN(node: UUID) async throws -> LSN

    /// Applies `batch` in one transaction: locks the node's checkpoint row, upserts
    /// `total = total + sum` for every key (the sum of its days) and every (key, day) in
    /// order, then moves the checkpoint LSN with
    /// compare-and-set. Throws `CheckpointSinkError.conflict` when the stored LSN is not
    /// `batch.previousLSN` (nothing is applied), `.outcomeUnknown` when the connection was
    /// lost around COMMIT, and any other error when the transaction surely rolled back.
    func apply(_ batch: CheckpointBatch) async throws

    /// Which of `ids` the sink already records (a request counted before, on any node).
    func knownRequests(_ ids: [String]) async throws -> Set<String>

    /// Deletes up to `limit` of `node`'s request rows taken before `beforeMillis`; returns
    /// how many. Retries older than the idempotency window count again, as documented.
    func pruneRequests(node: UUID, takenBeforeMillis beforeMillis: Int64, limit: Int) async throws -> Int
}

public enum CheckpointSinkError: Error, Equatable, CustomStringConvertible {
    /// The stored checkpoint LSN was not the one the batch continues from.
    case conflict(node: UUID, expectedLSN: LSN, storedLSN: LSN?)
    /// The transaction may or may not have committed; read the LSN back before retrying.
    case outcomeUnknown(reason: String)
    /// A request of the batch was recorded by another node since the caller asked
    /// (`knownRequests`); nothing was applied. Ask again and retry.
    case requestTakenMeanwhile(id: String)

    public var description: String {
        switch self {
        case .conflict(let node, let expected, let stored):
            "checkpoint conflict for node \(node): expected LSN \(expected), found \(stored.map(String.init) ?? "no row")"
        case .outcomeUnknown(let reason):
            "checkpoint outcome unknown (connection lost around COMMIT): \(reason)"
        case .requestTakenMeanwhile(let id):
            "request \(id) was recorded by another node during this checkpoint; nothing was applied, it will be retried"
        }
    }
}

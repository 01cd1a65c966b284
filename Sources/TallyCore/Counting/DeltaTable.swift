import TallyLog

/// Per-key sums of a consecutive run of log records, `(baseLSN, lastLSN]`.
///
/// The table is a pure function of the records it absorbed: applying the same LSN range in
/// the same order always gives the same sums, which is what lets a restart rebuild exactly
/// what a crash lost from the log alone.
public struct DeltaTable: Sendable, Equatable {
    /// The LSN the table starts after: the checkpoint it builds on.
    public private(set) var baseLSN: LSN
    /// The last LSN absorbed (equal to `baseLSN` while empty).
    public private(set) var lastLSN: LSN
    public private(set) var sums: [LogKey: Int128]

    /// - Parameter expectedKeys: room to reserve; a checkpointer passes the previous
    ///   interval's key count so a steady workload never pays for rehashing as it grows.
    public init(after baseLSN: LSN, expectedKeys: Int = 0) {
        self.baseLSN = baseLSN
        self.lastLSN = baseLSN
        self.sums = [:]
        if expectedKeys > 0 { sums.reserveCapacity(expectedKeys) }
    }

    public var isEmpty: Bool { lastLSN == baseLSN }
    public var keyCount: Int { sums.count }
    public var nextLSN: LSN { lastLSN + 1 }

    /// Adds the record at `lsn`, which must be the next one.
    @inline(__always)
    public mutating func absorb(_ record: LogRecord, at lsn: LSN) {
        precondition(lsn == lastLSN + 1, "delta table expected LSN \(lastLSN + 1), got \(lsn)")
        // Int128 cannot overflow here: it would take 2^64 records of Int64.max.
        sums[record.key, default: 0] += Int128(record.value)
        lastLSN = lsn
    }

    /// Adds a run of records whose first has `firstLSN` (which must be the next LSN).
    public mutating func absorb<Records: Sequence<LogRecord>>(_ records: Records, firstLSN: LSN) {
        var lsn = firstLSN
        for record in records {
            absorb(record, at: lsn)
            lsn += 1
        }
    }

    /// Folds a later table (which must start where this one ends) into this one.
    public mutating func append(_ later: DeltaTable) {
        precondition(later.baseLSN == lastLSN, "tables are not consecutive: \(lastLSN) then \(later.baseLSN)")
        for (key, sum) in later.sums { sums[key, default: 0] += sum }
        lastLSN = later.lastLSN
    }

    /// The deltas in key order, as a checkpoint upserts them (the order that rules out
    /// deadlocks between nodes).
    public func sortedDeltas() -> [KeyDelta] {
        sums.map { KeyDelta(key: $0.key, sum: $0.value) }.sorted { $0.key < $1.key }
    }
}

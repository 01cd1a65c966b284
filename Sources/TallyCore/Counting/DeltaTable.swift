import TallyLog

/// Per-key, per-day sums of a consecutive run of log records, `(baseLSN, lastLSN]`.
///
/// The table is a pure function of the records it absorbed: applying the same LSN range in
/// the same order always gives the same sums, which is what lets a restart rebuild exactly
/// what a crash lost from the log alone. Sums are kept per (key, UTC arrival day) because a
/// checkpoint writes both the key's total and its daily total; the key's total is the sum
/// of its days.
///
/// Records of a tagged request (an idempotent retry may come twice) are in `sums` like any
/// other, and the request is listed in `requests`: a checkpoint counts them only when
/// PostgreSQL has not seen the id yet, and otherwise takes them out again (re-reading them
/// from the log, which keeps the table small). A second request with an id already in the
/// table is never added.
public struct DeltaTable: Sendable, Equatable {
    /// One (key, day) cell of the table.
    public struct Cell: Hashable, Sendable {
        public var key: LogKey
        public var day: Day

        public init(key: LogKey, day: Day) {
            self.key = key
            self.day = day
        }
    }

    /// The LSN the table starts after: the checkpoint it builds on.
    public private(set) var baseLSN: LSN
    /// The last LSN absorbed (equal to `baseLSN` while empty).
    public private(set) var lastLSN: LSN
    /// The sums (open addressing: see `CellTable` for why not a `Dictionary`).
    private var cells: CellTable
    /// The first and last day any absorbed record fell on (nil while empty): per-key reads
    /// look up only the days in between.
    public private(set) var days: ClosedRange<Day>?
    /// Tagged requests, in LSN order.
    public private(set) var requests: [RequestSpan] = []
    /// Index in `requests` of each id's first request.
    private var requestIndex: [[UInt8]: Int] = [:]
    /// The request whose records are being absorbed.
    private var openRequest: OpenRequest?

    private struct OpenRequest: Sendable, Equatable {
        var index: Int
        var lastLSN: LSN
        var counts: Bool
    }

    /// - Parameter expectedKeys: room to reserve; a checkpointer passes the previous
    ///   interval's key count so a steady workload never pays for rehashing as it grows.
    public init(after baseLSN: LSN, expectedKeys: Int = 0) {
        self.baseLSN = baseLSN
        self.lastLSN = baseLSN
        self.cells = CellTable(minimumCapacity: expectedKeys)
    }

    public var isEmpty: Bool { lastLSN == baseLSN }
    /// Distinct (key, day) cells; one per key unless a key's records span midnight UTC.
    public var keyCount: Int { cells.count }
    public var nextLSN: LSN { lastLSN + 1 }

    /// Opens a tagged request: the records `entry` covers, absorbed next, belong to it. A
    /// request whose id the table already holds is a duplicate: its records are not added.
    public mutating func beginRequest(_ entry: RequestEntry) {
        precondition(entry.firstLSN == nextLSN, "a request starts at the next LSN \(nextLSN), not \(entry.firstLSN)")
        precondition(openRequest == nil, "a request is still being absorbed")
        let duplicate = requestIndex[entry.tag.id] != nil
        if !duplicate { requestIndex[entry.tag.id] = requests.count }
        openRequest = OpenRequest(index: requests.count, lastLSN: entry.lastLSN, counts: !duplicate)
        requests.append(RequestSpan(entry: entry, arrivalMillis: 0, state: duplicate ? .duplicateSkipped : .counted))
    }

    /// Adds the record at `lsn`, which must be the next one.
    @inline(__always)
    public mutating func absorb(_ record: LogRecord, at lsn: LSN) {
        precondition(lsn == lastLSN + 1, "delta table expected LSN \(lastLSN + 1), got \(lsn)")
        if let open = openRequest {
            if lsn == requests[open.index].entry.firstLSN { requests[open.index].arrivalMillis = record.arrivalMillis }
            if lsn == open.lastLSN { openRequest = nil }
            if !open.counts {
                lastLSN = lsn
                return
            }
        }
        let day = Day(arrivalMillis: record.arrivalMillis)
        // Int128 cannot overflow here: it would take 2^64 records of Int64.max.
        cells.add(Int128(record.value), key: record.key, day: day)
        include(day)
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

    /// Folds a later table (which must start where this one ends) into this one. A request
    /// of `later` whose id this table already holds stays listed, marked so that the
    /// checkpoint takes its records (already in the sums) out again.
    public mutating func append(_ later: DeltaTable) {
        precondition(later.baseLSN == lastLSN, "tables are not consecutive: \(lastLSN) then \(later.baseLSN)")
        precondition(openRequest == nil, "a request is still being absorbed")
        cells.reserveCapacity(cells.count + later.cells.count)
        later.cells.forEach { cell, sum in cells.add(sum, key: cell.key, day: cell.day) }
        for var request in later.requests {
            if request.state == .counted, requestIndex[request.entry.tag.id] != nil {
                request.state = .duplicateCounted
            } else if request.state == .counted {
                requestIndex[request.entry.tag.id] = requests.count
            }
            requests.append(request)
        }
        if var open = later.openRequest {
            open.index += requests.count - later.requests.count
            openRequest = open
        }
        if let range = later.days {
            include(range.lowerBound)
            include(range.upperBound)
        }
        lastLSN = later.lastLSN
    }

    /// Each key's sum over all its days (for tools and tests; checkpoints use `sortedDeltas`).
    public var keyTotals: [LogKey: Int128] {
        var totals: [LogKey: Int128] = [:]
        cells.forEach { cell, sum in totals[cell.key, default: 0] += sum }
        return totals
    }

    /// What the table holds for `key` on `day`.
    public func sum(of key: LogKey, on day: Day) -> Int128 {
        cells.sum(key: key, day: day)
    }

    /// What the table holds for `key`, over all days or those in `range`.
    public func sum(of key: LogKey, in range: ClosedRange<Day>? = nil) -> Int128 {
        guard let days else { return 0 }
        let lower = max(days.lowerBound, range?.lowerBound ?? days.lowerBound)
        let upper = min(days.upperBound, range?.upperBound ?? days.upperBound)
        guard lower <= upper else { return 0 }
        var total: Int128 = 0
        var day = lower
        while day <= upper {
            total += sum(of: key, on: day)
            day = day.adding(days: 1)
        }
        return total
    }

    /// The deltas in (key, day) order, as a checkpoint upserts them (the order that rules
    /// out deadlocks between nodes), without `excluded` (the records of requests that must
    /// not count after all).
    public func sortedDeltas(excluding excluded: [Cell: Int128] = [:]) -> [KeyDelta] {
        var deltas: [KeyDelta] = []
        deltas.reserveCapacity(cells.count)
        cells.forEach { cell, sum in
            let kept = sum - (excluded[cell] ?? 0)
            precondition(kept >= 0, "excluded more than the table holds for \(cell.key.uuidString) on \(cell.day)")
            if kept > 0 { deltas.append(KeyDelta(key: cell.key, day: cell.day, sum: kept)) }
        }
        return deltas.sorted { ($0.key, $0.day) < ($1.key, $1.day) }
    }

    private mutating func include(_ day: Day) {
        if let range = days {
            if day < range.lowerBound {
                days = day...range.upperBound
            } else if day > range.upperBound {
                days = range.lowerBound...day
            }
        } else {
            days = day...day
        }
    }
}

/// A tagged request in a delta table.
public struct RequestSpan: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Its records are in the sums; it counts if PostgreSQL has not seen its id.
        case counted
        /// A later request with an id already in the table: its records were never added.
        case duplicateSkipped
        /// A duplicate found when two tables were joined: its records are in the sums and
        /// the checkpoint takes them out.
        case duplicateCounted
    }

    public var entry: RequestEntry
    /// The arrival time of its first record: when the request was taken.
    public var arrivalMillis: Int64
    public var state: State
}

import Synchronization
import TallyLog

/// Keeps the running per-key sums of the durable log since the last checkpoint.
///
/// Two paths feed it, and both are keyed by LSN so neither can apply a record twice:
/// - **live**: the log's writer hands over each frame right after its fdatasync
///   (`absorb(firstLSN:groups:)`), a few microseconds of dictionary updates per frame;
/// - **catch-up**: `catchUp(through:)` reads the segment files from the next missing LSN,
///   used at start (after learning the checkpoint LSN), after a frame was missed, and to
///   rebuild after a checkpoint whose outcome is unknown.
/// A live frame that does not continue exactly where the table ends is ignored and flags a
/// gap; the next catch-up reads it from disk. So the table is always a pure function of the
/// log from the checkpoint LSN on.
///
/// **Bounded memory.** The table holds one entry per pending (key, day); while PostgreSQL is
/// away, fresh keys would grow it without limit. Past `maxPendingKeys` (counting the table a
/// checkpoint has in flight) the compactor stops absorbing: the log holds everything, and the
/// table simply ends at an earlier LSN (a gap). Catch-up reads only up to the bound too, so
/// the checkpointer applies the log in LSN slices of at most `maxPendingKeys` keys, each its
/// own compare-and-set checkpoint, at start-up as after an outage.
public final class Compactor: Sendable {
    private struct State {
        /// Nil until the checkpoint LSN is known (PostgreSQL may be down at start).
        var table: DeltaTable?
        /// Taken by a checkpoint whose outcome is not known yet: still pending for reads,
        /// until `settle` says it committed (PostgreSQL has it) or rolled back (it returns).
        var inFlight: DeltaTable?
        /// When the oldest record of the table in flight was absorbed: it is still waiting
        /// for PostgreSQL, so the lag `/metrics` and `/readyz` report must include it.
        var inFlightOldestAt: ContinuousClock.Instant?
        /// A live frame arrived that did not continue the table: catch up from disk.
        var hasGap = false
        /// When the oldest record in the table was absorbed, for the freshness deadline.
        var oldestPendingAt: ContinuousClock.Instant?
        /// The table reached `maxPendingKeys`: what follows it is in the log only.
        var overBudget = false

        /// Pending (key, day) entries held in memory: the table and the one in flight.
        var heldKeys: Int { (table?.keyCount ?? 0) + (inFlight?.keyCount ?? 0) }
    }

    private let state = Mutex(State())
    private let reader: any RecordSource
    private let onRequest: (@Sendable (RequestEntry) -> Void)?
    /// Upper bound on pending (key, day) entries held in memory (exceeded by at most one
    /// frame's records on the live path, and by the end of one request on catch-up).
    public let maxPendingKeys: Int

    /// - Parameters:
    ///   - reader: where catch-up reads records: the log's files (`LogReader`), or in tests a
    ///     source that interleaves other events with the read.
    ///   - onRequest: told of every tagged request the compactor sees, live or read back (the
    ///     node's request window learns a replayed log's ids from it). Must not block.
    ///   - maxPendingKeys: the memory bound (see the type's documentation).
    public init(reader: any RecordSource, maxPendingKeys: Int = .max,
                onRequest: (@Sendable (RequestEntry) -> Void)? = nil) {
        precondition(maxPendingKeys >= 1, "the compactor must hold at least one key")
        self.reader = reader
        self.maxPendingKeys = maxPendingKeys
        self.onRequest = onRequest
    }

    /// Whether the table stopped at `maxPendingKeys`: records after it wait in the log for
    /// the next slice.
    public var isOverBudget: Bool { state.withLock { $0.overBudget } }

    /// Whether durable records are missing from the table (a gap, or over budget): a
    /// catch-up has more to read.
    public var isBehind: Bool { state.withLock { $0.hasGap } }

    /// Whether the compactor knows where it starts (the checkpoint LSN has been read).
    public var isStarted: Bool { state.withLock { $0.table != nil } }

    /// The LSN the table expects next, or nil before start.
    public var nextLSN: LSN? { state.withLock { $0.table?.nextLSN } }

    /// Pending distinct keys and records (records = LSNs absorbed since the base), the table
    /// a checkpoint has in flight included: PostgreSQL does not hold it yet. (Keys are an
    /// upper bound then: a key may be in both tables.)
    public var pending: (keys: Int, records: UInt64) {
        state.withLock { state in
            guard let table = state.table else { return (0, 0) }
            // The table in flight counts while the current table continues it (a reset
            // meanwhile starts over from the log, which holds those records again).
            let inFlightRecords = state.inFlight.map { $0.lastLSN == table.baseLSN ? $0.lastLSN - $0.baseLSN : 0 } ?? 0
            return (state.heldKeys, table.lastLSN - table.baseLSN + inFlightRecords)
        }
    }

    /// When the oldest pending record was absorbed, the table in flight included; nil when
    /// nothing is pending.
    public var oldestPendingAt: ContinuousClock.Instant? {
        state.withLock { state in
            switch (state.oldestPendingAt, state.inFlightOldestAt) {
            case (let table?, let inFlight?): min(table, inFlight)
            case (let table, let inFlight): table ?? inFlight
            }
        }
    }

    /// Called on the log writer's thread for each durable frame. Never blocks on I/O.
    public func absorb(firstLSN: LSN, groups: some Collection<Append>) {
        state.withLock { state in
            guard var table = state.table, !state.hasGap else {
                // Not counted yet (checkpoint LSN unknown, or a gap): it is still pending.
                if state.oldestPendingAt == nil { state.oldestPendingAt = .now }
                return
            }
            let count = groups.reduce(0) { $0 + LSN($1.records.count) }
            guard count > 0, firstLSN + count - 1 > table.lastLSN else { return }  // already absorbed
            guard firstLSN == table.nextLSN else {
                state.hasGap = true
                return
            }
            guard state.heldKeys < maxPendingKeys else {
                // Over budget: the frame stays in the log only; a later slice reads it.
                state.hasGap = true
                state.overBudget = true
                if state.oldestPendingAt == nil { state.oldestPendingAt = .now }
                return
            }
            state.table = nil  // avoid a copy-on-write of the dictionary
            var lsn = firstLSN
            for group in groups {
                if let tag = group.tag {
                    let request = RequestEntry(tag: tag, firstLSN: lsn, count: group.records.count)
                    table.beginRequest(request)
                    onRequest?(request)
                }
                table.absorb(group.records, firstLSN: lsn)
                lsn += LSN(group.records.count)
            }
            state.table = table
            if state.oldestPendingAt == nil { state.oldestPendingAt = .now }
        }
    }

    /// `absorb(firstLSN:groups:)` for a frame the log reports durable.
    public func absorb(_ frame: DurableFrame) {
        absorb(firstLSN: frame.firstLSN, groups: frame.appends)
    }

    /// Starts (or restarts) the table right after `checkpointLSN`, dropping whatever it held.
    /// The caller then runs `catchUp(through:)` to read what the log holds after that LSN.
    public func reset(after checkpointLSN: LSN) {
        state.withLock { state in
            state.table = DeltaTable(after: checkpointLSN)
            state.inFlight = nil
            state.hasGap = true
            state.overBudget = false  // the next catch-up decides
            // oldestPendingAt stays: what was pending before the reset is pending still.
        }
    }

    /// Reads from the segment files every record the table misses, up to `durableLSN`, or
    /// up to `maxPendingKeys` (then `isOverBudget`, and the next catch-up after a checkpoint
    /// reads the next slice). Blocking: call it from a thread that may block, never the
    /// cooperative pool. `onProgress` hears of the LSN reached every million records.
    /// Returns the number of records read.
    @discardableResult
    public func catchUp(through durableLSN: LSN, onProgress: ((LSN) -> Void)? = nil) throws -> Int {
        let opening: (lsn: LSN, room: Int)? = state.withLock { state in
            guard let table = state.table, state.hasGap || table.lastLSN < durableLSN else { return nil }
            return (table.nextLSN, maxPendingKeys - state.heldKeys)
        }
        guard let opening else { return 0 }
        guard opening.room > 0 else {
            state.withLock { $0.overBudget = true }
            return 0
        }
        let start = opening.lsn
        let slice = try LogSlice.read(from: reader, from: start, through: durableLSN, maxKeys: opening.room,
                                      onRequest: onRequest, onProgress: onProgress)
        let addition = slice.table
        let sliceEnded = slice.endedEarly
        return state.withLock { state in
            // Live frames were ignored while `hasGap` was set, so the table is as we left it
            // unless a reset intervened; then this catch-up is stale and the next one redoes it.
            guard var table = state.table, table.nextLSN == start else { return 0 }
            state.table = nil
            table.append(addition)
            state.table = table
            state.hasGap = sliceEnded
            state.overBudget = sliceEnded
            if !addition.isEmpty && state.oldestPendingAt == nil { state.oldestPendingAt = .now }
            return Int(addition.lastLSN - addition.baseLSN)
        }
    }

    /// Hands over everything pending for a checkpoint and starts a new empty table after it.
    /// The taken table stays visible to reads (`pending`) until `settle`.
    public func take() -> DeltaTable? {
        state.withLock { state in
            guard let table = state.table else { return nil }
            precondition(state.inFlight == nil, "a checkpoint is already in flight")
            state.table = DeltaTable(after: table.lastLSN, expectedKeys: min(table.keyCount, maxPendingKeys))
            state.inFlight = table.isEmpty ? nil : table
            state.inFlightOldestAt = table.isEmpty ? nil : state.oldestPendingAt
            if !state.hasGap { state.oldestPendingAt = nil }
            return table
        }
    }

    public enum Settlement: Sendable {
        /// PostgreSQL holds the taken table now.
        case committed
        /// The transaction surely rolled back: the sums return in front of what arrived since.
        case rolledBack(pendingSince: ContinuousClock.Instant?)
        /// Nobody knows: the caller reads the stored LSN back and resets, rebuilding from the log.
        case unknown
    }

    /// Ends the checkpoint of the table `take()` handed out.
    public func settle(_ settlement: Settlement) {
        state.withLock { state in
            guard let taken = state.inFlight else { return }
            let takenOldestAt = state.inFlightOldestAt
            state.inFlight = nil
            state.inFlightOldestAt = nil
            if case .unknown = settlement, let takenOldestAt {
                // Not known to be in PostgreSQL: still waiting, from the log after the reset.
                state.oldestPendingAt = min(takenOldestAt, state.oldestPendingAt ?? takenOldestAt)
            }
            guard case .rolledBack(let pendingSince) = settlement else { return }
            guard let current = state.table, current.baseLSN == taken.lastLSN else {
                // The table was reset meanwhile: the log will provide these records again.
                return
            }
            var merged = taken
            merged.append(current)
            state.table = merged
            if let pendingSince {
                state.oldestPendingAt = min(pendingSince, state.oldestPendingAt ?? pendingSince)
            }
        }
    }

    /// What this node holds for `key` (over `days`, or all days) beyond the checkpoint at
    /// `checkpointLSN`, the LSN PostgreSQL had in the same snapshot as the persisted part
    /// of the read. Nil when the compactor cannot say exactly: not started, catching up
    /// from the log, or a checkpoint boundary the tables no longer show (read again).
    public func pending(of key: LogKey, in days: ClosedRange<Day>? = nil, afterCheckpoint checkpointLSN: LSN) -> Int128? {
        state.withLock { state in
            guard let table = state.table, !state.hasGap else { return nil }
            if table.baseLSN == checkpointLSN { return table.sum(of: key, in: days) }
            if let inFlight = state.inFlight, inFlight.baseLSN == checkpointLSN {
                return inFlight.sum(of: key, in: days) + table.sum(of: key, in: days)
            }
            return nil
        }
    }

    /// `pending(of:in:afterCheckpoint:)` for each day of `days` that has a pending sum.
    public func pendingByDay(of key: LogKey, in days: ClosedRange<Day>, afterCheckpoint checkpointLSN: LSN) -> [Day: Int128]? {
        state.withLock { state in
            guard let table = state.table, !state.hasGap else { return nil }
            let tables: [DeltaTable]
            if table.baseLSN == checkpointLSN {
                tables = [table]
            } else if let inFlight = state.inFlight, inFlight.baseLSN == checkpointLSN {
                tables = [inFlight, table]
            } else {
                return nil
            }
            var result: [Day: Int128] = [:]
            for table in tables {
                guard let held = table.days else { continue }
                let lower = max(held.lowerBound, days.lowerBound)
                let upper = min(held.upperBound, days.upperBound)
                guard lower <= upper else { continue }
                var day = lower
                while day <= upper {
                    let sum = table.sum(of: key, on: day)
                    if sum != 0 { result[day, default: 0] += sum }
                    day = day.adding(days: 1)
                }
            }
            return result
        }
    }
}

public enum CompactorError: Error, CustomStringConvertible {
    case logEndsEarly(expectedThrough: LSN, foundThrough: LSN)

    public var description: String {
        switch self {
        case .logEndsEarly(let expected, let found):
            "the log's files end at LSN \(found) but LSN \(expected) is durable"
        }
    }
}

/// Log entries in LSN order, read from wherever the log keeps them. `LogReader` is the one
/// production source; the protocol exists so that tests can interleave a reset or live
/// frames with a catch-up's read deterministically.
public protocol RecordSource: Sendable {
    /// Calls `body` for every record with `from ≤ LSN ≤ through`, in order, each request
    /// entry before its records; throws when the first record available comes after `from`
    /// (see `LogReader`).
    @discardableResult
    func forEachEntry(from first: LSN?, through last: LSN, _ body: (LogEntry) throws -> Void) throws -> Int
}

extension RecordSource {
    /// The (key, day) sums of the records of `spans`, read again from the log: what a
    /// checkpoint takes out of its deltas for requests that must not count after all.
    /// Blocking.
    public func sums(of spans: [RequestSpan]) throws -> [DeltaTable.Cell: Int128] {
        var sums: [DeltaTable.Cell: Int128] = [:]
        for span in spans {
            var next = span.entry.firstLSN
            try forEachEntry(from: span.entry.firstLSN, through: span.entry.lastLSN) { entry in
                guard case .record(let lsn, let record) = entry else { return }
                precondition(lsn == next, "records of a request are consecutive")
                sums[DeltaTable.Cell(key: record.key, day: Day(arrivalMillis: record.arrivalMillis)), default: 0]
                    += Int128(record.value)
                next += 1
            }
            guard next == span.entry.lastLSN + 1 else {
                throw CompactorError.logEndsEarly(expectedThrough: span.entry.lastLSN, foundThrough: next - 1)
            }
        }
        return sums
    }
}

extension LogReader: RecordSource {}

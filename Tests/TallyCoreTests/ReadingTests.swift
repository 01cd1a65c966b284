import Foundation
import Synchronization
import Testing
import TallyCore
import TallyLog

@Suite struct DayTests {
    @Test func daysConvertBothWays() {
        #expect(Day(iso: "1970-01-01")?.number == 0)
        #expect(Day(iso: "2000-03-01")?.number == 11_017)
        #expect(Day(iso: "2026-12-01")?.number == 20_788)
        #expect(Day(iso: "1969-12-31")?.number == -1)
        for iso in ["0001-01-01", "1600-02-29", "1900-02-28", "2000-02-29", "2024-12-31", "9999-12-31"] {
            #expect(Day(iso: iso)?.iso == iso)
        }
        var day = Day.first
        while day < Day(iso: "0006-01-01")! { // every day round-trips through its components
            let (year, month, date) = day.components
            #expect(Day(year: year, month: month, day: date) == day)
            day = day.adding(days: 1)
        }
    }

    @Test func onlyExactlyYYYYMMDDOfARealDayParses() {
        for text in ["2026-2-01", "2026-02-1", "2026/02/01", "20260201", "2026-02-30", "1900-02-29", "0000-01-01",
                     "2026-13-01", "2026-00-10", " 2026-02-01", "2026-02-01T00:00", "２０２６-02-01", "+026-02-01"] {
            #expect(Day(iso: text) == nil, "\(text)")
        }
    }

    @Test func anArrivalBelongsToItsUTCDay() {
        let midnight = Int64(Day(iso: "2026-12-01")!.number) * Day.millisecondsPerDay
        #expect(Day(arrivalMillis: midnight - 1).iso == "2026-11-30")
        #expect(Day(arrivalMillis: midnight).iso == "2026-12-01")
        #expect(Day(arrivalMillis: midnight + Day.millisecondsPerDay - 1).iso == "2026-12-01")
        #expect(Day(arrivalMillis: -1).iso == "1969-12-31")
    }
}

@Suite struct DecimalTotalTests {
    @Test func addsWithoutLimit() {
        let big = DecimalTotal(decimal: "99999999999999999999999999999999999999999")!
        #expect(big.adding(Int128(1)).description == "100000000000000000000000000000000000000000")
        #expect(DecimalTotal(Int128(Int64.max)).adding(Int128(Int64.max)).description == "18446744073709551614")
        #expect(DecimalTotal.zero.adding(Int128(0)).isZero)
    }

    @Test func parsesPostgresWholeNumbersOnly() {
        #expect(DecimalTotal(decimal: "00120")?.description == "120")
        #expect(DecimalTotal(decimal: "7.000")?.description == "7")
        for text in ["-1", "1.5", "1e5", "", " 1", "NaN"] { #expect(DecimalTotal(decimal: text) == nil, "\(text)") }
    }
}

/// A persisted side whose answers a test sets, to place a read's snapshot exactly.
final class FakePersisted: PersistedCounts, @unchecked Sendable {
    let state = Mutex<(totals: [LogKey: Int128], daily: [LogKey: [Day: Int128]], lsn: LSN, reads: Int)>(([:], [:], 0, 0))

    func total(of key: LogKey, checkpointOf node: UUID) async throws -> PersistedRead<DecimalTotal> {
        state.withLock { state in
            state.reads += 1
            return PersistedRead(value: DecimalTotal(state.totals[key] ?? 0), checkpointLSN: state.lsn)
        }
    }

    func dailyTotals(of key: LogKey, in days: ClosedRange<Day>, checkpointOf node: UUID) async throws
        -> PersistedRead<[(day: Day, total: DecimalTotal)]>
    {
        state.withLock { state in
            let rows = (state.daily[key] ?? [:]).filter { days.contains($0.key) }.sorted { $0.key < $1.key }
            return PersistedRead(value: rows.map { (day: $0.key, total: DecimalTotal($0.value)) }, checkpointLSN: state.lsn)
        }
    }

    func total(of key: LogKey, in days: ClosedRange<Day>, checkpointOf node: UUID) async throws -> PersistedRead<DecimalTotal> {
        state.withLock { state in
            let sum = (state.daily[key] ?? [:]).filter { days.contains($0.key) }.values.reduce(0, +)
            return PersistedRead(value: DecimalTotal(sum), checkpointLSN: state.lsn)
        }
    }
}

@Suite struct CountReaderTests {
    let key = LogKey(high: 5, low: 5)
    let midnight = Int64(Day(iso: "2026-12-01")!.number) * Day.millisecondsPerDay

    private func record(_ value: Int64, at millis: Int64) -> LogRecord {
        LogRecord(key: key, value: value, arrivalMillis: millis)
    }

    @Test func aReadBeforeTheCompactorKnowsItsBaseIsRefusedNotGuessed() async throws {
        let compactor = Compactor(reader: LogReader(directory: "/nonexistent"))
        let reader = CountReader(persisted: FakePersisted(), compactor: compactor, node: testNode)
        await #expect(throws: CountReadError.self) { try await reader.count(of: key) }
    }

    @Test func pendingCountsUntilTheCheckpointThatCarriesItIsVisible() async throws {
        let persisted = FakePersisted()
        let compactor = Compactor(reader: LogReader(directory: "/nonexistent"))
        compactor.reset(after: 0)
        try compactor.catchUp(through: 0)
        let reader = CountReader(persisted: persisted, compactor: compactor, node: testNode)
        #expect(try await reader.count(of: LogKey(high: 9, low: 9)).total.isZero, "a key never counted reads 0")

        compactor.absorb(firstLSN: 1, groups: [Append(records: [record(5, at: midnight - 1), record(7, at: midnight)])])
        var count = try await reader.count(of: key)
        #expect((count.total, count.persisted, count.pending) == (12, 0, 12))

        // A checkpoint takes LSNs 1…2; until PostgreSQL shows it, they stay pending.
        _ = compactor.take()
        compactor.absorb(firstLSN: 3, groups: [Append(records: [record(100, at: midnight)])])
        count = try await reader.count(of: key)
        #expect((count.total, count.persisted, count.pending) == (112, 0, 112))

        // Committed: a snapshot that shows LSN 2 counts 1…2 as persisted, exactly once.
        persisted.state.withLock { $0 = ([key: 12], [key: [Day(iso: "2026-11-30")!: 5, Day(iso: "2026-12-01")!: 7]], 2, 0) }
        count = try await reader.count(of: key)
        #expect((count.total, count.persisted, count.pending) == (112, 12, 100))
        compactor.settle(.committed)
        count = try await reader.count(of: key)
        #expect((count.total, count.persisted, count.pending) == (112, 12, 100))

        let days = try await reader.dailyTotals(of: key, in: Day(iso: "2026-11-01")!...Day(iso: "2026-12-31")!)
        #expect(days.map { "\($0.day)=\($0.total)" } == ["2026-11-30=5", "2026-12-01=107"], "midnight splits the days")
        #expect(try await reader.total(of: key, in: Day(iso: "2026-12-01")!...Day(iso: "2026-12-01")!) == 107)
    }

    @Test func aSnapshotFromBeforeASettledCheckpointIsReadAgain() async throws {
        let persisted = FakePersisted()
        let compactor = Compactor(reader: LogReader(directory: "/nonexistent"))
        compactor.reset(after: 0)
        try compactor.catchUp(through: 0)
        compactor.absorb(firstLSN: 1, groups: [Append(records: [record(5, at: midnight)])])
        _ = compactor.take()
        compactor.settle(.committed)
        // PostgreSQL (as this stale snapshot says) is still at LSN 0: the compactor no longer
        // shows that boundary, so the reader must not answer 0 + nothing.
        let reader = CountReader(persisted: persisted, compactor: compactor, node: testNode)
        await #expect(throws: CountReadError.self) { try await reader.count(of: key) }
        #expect(persisted.state.withLock { $0.reads } == reader.attempts, "read again, a bounded number of times")
    }
}

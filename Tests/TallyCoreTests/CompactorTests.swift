import Foundation
import Testing
import TallyCore
import TallyLog

@Suite struct CompactorTests {
    /// While a checkpoint is in flight its table is not in PostgreSQL yet: the pending counts
    /// and the oldest pending instant (the lag `/metrics` and `/readyz` report) include it
    /// until the checkpoint settles. (They read 0 during a pass against a dead server.)
    @Test func aTableInFlightStaysPendingUntilItSettles() async throws {
        let dir = TemporaryDirectory()
        let compactor = Compactor(reader: LogReader(directory: dir.path))
        compactor.reset(after: 0)
        try compactor.catchUp(through: 0)
        var config = LogConfiguration(directory: dir.path, nodeID: LogKey(testNode))
        config.onDurable = { compactor.absorb($0) }
        let log = try Log.open(config)
        var generator = SplitMix64(state: 7)
        try await log.append(randomRecords(10, keys: 5, using: &generator))
        let oldest = try #require(compactor.oldestPendingAt)

        _ = try #require(compactor.take())
        #expect(compactor.pending.records == 10, "in flight, still pending")
        #expect(compactor.oldestPendingAt == oldest, "the lag keeps counting from the oldest record")
        try await log.append(randomRecords(3, keys: 5, using: &generator))
        #expect(compactor.pending.records == 13 && compactor.oldestPendingAt == oldest)

        compactor.settle(.committed)
        #expect(compactor.pending.records == 3, "what arrived during the pass")
        #expect(try #require(compactor.oldestPendingAt) > oldest)
        let second = try #require(compactor.oldestPendingAt)
        _ = compactor.take()
        compactor.settle(.unknown)
        #expect(compactor.oldestPendingAt == second, "an unknown outcome is still waiting: the lag goes on from its oldest")
        compactor.reset(after: 13)
        _ = compactor.take()
        compactor.settle(.committed)
        #expect(compactor.pending.records == 0)
        await log.close()
    }

    @Test func liveStateEqualsAReplayOfTheSameLSNs() async throws {
        let dir = TemporaryDirectory()
        let compactor = Compactor(reader: LogReader(directory: dir.path))
        compactor.reset(after: 0)
        try compactor.catchUp(through: 0)
        var config = LogConfiguration(directory: dir.path, nodeID: LogKey(testNode))
        config.segmentSizeBytes = 8_192
        config.onDurable = { compactor.absorb($0) }
        let log = try Log.open(config)

        // Concurrent appenders of random sizes and keys.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<16 {
                group.addTask {
                    var generator = SplitMix64(state: UInt64(task))
                    for _ in 0..<50 {
                        let count = Int.random(in: 1...20, using: &generator)
                        try await log.append(randomRecords(count, keys: 40, using: &generator))
                    }
                }
            }
            try await group.waitForAll()
        }
        let live = try #require(compactor.take())
        #expect(live.lastLSN == log.durableLSN)

        var replayed = DeltaTable(after: 0)
        try LogReader(directory: dir.path).forEachRecord { replayed.absorb($1, at: $0) }
        #expect(live == replayed)

        // And from a later LSN too: a table started mid-log equals the replay from there.
        let midway = live.lastLSN / 2
        let fromMid = Compactor(reader: LogReader(directory: dir.path))
        fromMid.reset(after: midway)
        try fromMid.catchUp(through: log.durableLSN)
        var replayedFromMid = DeltaTable(after: midway)
        try LogReader(directory: dir.path).forEachRecord(from: midway + 1) { replayedFromMid.absorb($1, at: $0) }
        #expect(fromMid.take() == replayedFromMid)
        await log.close()
    }

    @Test func aFrameThatDoesNotContinueTheTableIsIgnoredAndCaughtUpFromDisk() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(LogConfiguration(directory: dir.path, nodeID: LogKey(testNode)))
        var generator = SplitMix64(state: 1)
        let first = randomRecords(10, keys: 3, using: &generator)
        let second = randomRecords(10, keys: 3, using: &generator)
        try await log.append(first)
        try await log.append(second)

        let compactor = Compactor(reader: LogReader(directory: dir.path))
        compactor.reset(after: 0)
        try compactor.catchUp(through: 0)  // started and caught up: live frames count from here
        #expect(compactor.nextLSN == 1)
        compactor.absorb(firstLSN: 11, groups: [Append(records: second)])  // skips LSNs 1...10: the gap check refuses it
        #expect(compactor.pending.records == 0, "a frame that does not continue the table is not absorbed")
        compactor.absorb(firstLSN: 1, groups: [Append(records: first)])  // continues the table, but a gap is open: read from disk
        #expect(compactor.pending.records == 0, "after a gap, nothing live counts until a catch-up")
        #expect(try compactor.catchUp(through: 20) == 20)
        compactor.absorb(firstLSN: 11, groups: [Append(records: second)])  // already there: ignored
        let table = try #require(compactor.take())
        #expect(table.lastLSN == 20)
        #expect(table.keyTotals == expectedTotals(first + second))
        await log.close()
    }

    /// A source that runs `interleave` after the first record it hands out.
    final class InterleavingSource: RecordSource, @unchecked Sendable {
        let inner: LogReader
        var interleave: (() -> Void)?
        init(inner: LogReader) { self.inner = inner }
        func forEachEntry(from first: LSN?, through last: LSN, _ body: (LogEntry) throws -> Void) throws -> Int {
            try inner.forEachEntry(from: first, through: last) { entry in
                try body(entry)
                if let action = interleave {
                    interleave = nil
                    action()
                }
            }
        }
    }

    @Test func aCatchUpOvertakenByAResetIsDropped() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(LogConfiguration(directory: dir.path, nodeID: LogKey(testNode)))
        var generator = SplitMix64(state: 2)
        let records = randomRecords(30, keys: 5, using: &generator)
        try await log.append(records)

        let source = InterleavingSource(inner: LogReader(directory: dir.path))
        let compactor = Compactor(reader: source)
        compactor.reset(after: 0)
        // While the catch-up reads 1…30, the checkpointer learns the stored LSN is 10.
        source.interleave = { compactor.reset(after: 10) }
        #expect(try compactor.catchUp(through: 30) == 0, "a stale catch-up adds nothing")
        #expect(compactor.nextLSN == 11)
        #expect(try compactor.catchUp(through: 30) == 20)
        let table = try #require(compactor.take())
        #expect(table.baseLSN == 10 && table.lastLSN == 30)
        #expect(table.keyTotals == expectedTotals(Array(records[10...])))
        await log.close()
    }

    @Test func catchUpsRacingLiveAppendsEndEqualToAReplay() async throws {
        let dir = TemporaryDirectory()
        let compactor = Compactor(reader: LogReader(directory: dir.path))
        var config = LogConfiguration(directory: dir.path, nodeID: LogKey(testNode))
        config.segmentSizeBytes = 4_096
        config.onDurable = { compactor.absorb($0) }
        let log = try Log.open(config)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var generator = SplitMix64(state: UInt64(100 + task))
                    for _ in 0..<60 {
                        try await log.append(randomRecords(Int.random(in: 1...10, using: &generator), keys: 25, using: &generator))
                    }
                }
            }
            group.addTask {
                // The checkpointer's catch-ups, starting before the table knows its base.
                compactor.reset(after: 0)
                for _ in 0..<40 {
                    try compactor.catchUp(through: log.durableLSN)
                    try await Task.sleep(for: .milliseconds(1))
                }
            }
            try await group.waitForAll()
        }
        try compactor.catchUp(through: log.durableLSN)
        let live = try #require(compactor.take())
        var replayed = DeltaTable(after: 0)
        try LogReader(directory: dir.path).forEachRecord { replayed.absorb($1, at: $0) }
        #expect(live.lastLSN == log.durableLSN)
        #expect(live == replayed)
        await log.close()
    }

    @Test func sumsBeyondInt64AreExact() {
        var table = DeltaTable(after: 0)
        let key = LogKey(high: 1, low: 1)
        table.absorb(LogRecord(key: key, value: .max, arrivalMillis: 0), at: 1)
        table.absorb(LogRecord(key: key, value: .max, arrivalMillis: 0), at: 2)
        table.absorb(LogRecord(key: key, value: .max, arrivalMillis: 0), at: 3)
        #expect(table.keyTotals[key] == Int128(Int64.max) * 3)
        #expect(table.sortedDeltas() == [KeyDelta(key: key, day: Day(number: 0), sum: Int128(Int64.max) * 3)])
    }

    @Test func sortedDeltasFollowKeyOrder() {
        var table = DeltaTable(after: 5)
        for (lsn, high) in zip(6..., [9, 3, 7, 3, 1] as [UInt64]) {
            table.absorb(LogRecord(key: LogKey(high: high, low: 0), value: 1, arrivalMillis: 0), at: LSN(lsn))
        }
        #expect(table.sortedDeltas().map(\.key.high) == [1, 3, 7, 9])
        #expect(table.lastLSN == 10)
    }
}

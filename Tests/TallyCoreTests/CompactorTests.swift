import Foundation
import Testing
import TallyCore
import TallyLog

@Suite struct CompactorTests {
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
        compactor.absorb(firstLSN: 11, groups: [second])  // skips LSNs 1...10: ignored
        compactor.absorb(firstLSN: 1, groups: [first])    // ignored too until caught up
        try compactor.catchUp(through: 20)
        compactor.absorb(firstLSN: 11, groups: [second])  // already there: ignored
        let table = try #require(compactor.take())
        #expect(table.lastLSN == 20)
        #expect(table.sums == expectedTotals(first + second))
        await log.close()
    }

    @Test func sumsBeyondInt64AreExact() {
        var table = DeltaTable(after: 0)
        let key = LogKey(high: 1, low: 1)
        table.absorb(LogRecord(key: key, value: .max, arrivalMillis: 0), at: 1)
        table.absorb(LogRecord(key: key, value: .max, arrivalMillis: 0), at: 2)
        table.absorb(LogRecord(key: key, value: .max, arrivalMillis: 0), at: 3)
        #expect(table.sums[key] == Int128(Int64.max) * 3)
        #expect(table.sortedDeltas() == [KeyDelta(key: key, sum: Int128(Int64.max) * 3)])
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

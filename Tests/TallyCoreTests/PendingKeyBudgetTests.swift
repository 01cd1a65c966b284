import Foundation
import Logging
import Testing
import TallyCore
import TallyLog

/// The compactor's memory bound: past `maxPendingKeys` it stops absorbing, and the log is
/// applied in LSN slices, each a checkpoint of its own, with every key counted exactly once.
@Suite struct PendingKeyBudgetTests {
    /// `count` records of fresh keys (no key repeats), one per append.
    static func freshRecords(_ count: Int, startingAt first: Int) -> [LogRecord] {
        (first..<(first + count)).map { LogRecord(key: LogKey(high: UInt64($0), low: 9), value: 1, arrivalMillis: 0) }
    }

    @Test func theLiveTableStopsAtTheBudgetAndTheRestWaitsInTheLog() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        sink.setFault(.unreachable)  // PostgreSQL away: nothing drains the table
        let node = try Node(directory: dir.path, sink: sink, maxPendingKeys: 100)
        node.compactor.reset(after: 0)
        try node.compactor.catchUp(through: 0)
        for batch in 0..<50 { try await node.log.append(Self.freshRecords(10, startingAt: batch * 10)) }

        #expect(node.compactor.isOverBudget && node.compactor.isBehind)
        // At most one frame past the bound (each append is its own frame here, or a few).
        #expect(node.compactor.pending.keys >= 100 && node.compactor.pending.keys < 100 + 500)
        #expect(node.log.durableLSN == 500, "every increment was still acknowledged")
        // Reads cannot be exact while records wait outside the table.
        #expect(node.compactor.pending(of: LogKey(high: 1, low: 9), afterCheckpoint: 0) == nil)
        await node.log.close()
    }

    @Test func catchUpReadsOneSliceAtATimeAndTheSlicesAddUpToTheLog() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(LogConfiguration(directory: dir.path, nodeID: LogKey(testNode)))
        var all: [LogRecord] = []
        for batch in 0..<100 {
            let records = Self.freshRecords(7, startingAt: batch * 7) + Self.freshRecords(3, startingAt: 0)  // some repeat
            try await log.append(records)
            all += records
        }
        await log.close()

        let compactor = Compactor(reader: LogReader(directory: dir.path), maxPendingKeys: 64)
        compactor.reset(after: 0)
        var merged = DeltaTable(after: 0)
        var slices = 0
        while true {
            try compactor.catchUp(through: 1_000)
            let table = try #require(compactor.take())
            #expect(table.keyCount <= 64 + 10, "a slice ends within one request of the bound")
            #expect(table.baseLSN == merged.lastLSN, "slices are consecutive LSN ranges")
            merged.append(table)
            compactor.settle(.committed)
            slices += 1
            if !compactor.isBehind && merged.lastLSN == 1_000 { break }
            guard slices < 100 else {
                Issue.record("the catch-up did not end within 100 slices")
                break
            }
        }
        #expect(slices > 10)
        var replayed = DeltaTable(after: 0)
        try LogReader(directory: dir.path).forEachRecord { replayed.absorb($1, at: $0) }
        #expect(merged.keyTotals == replayed.keyTotals)
        #expect(!compactor.isOverBudget)
    }

    @Test func aSliceNeverSplitsATaggedRequest() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(LogConfiguration(directory: dir.path, nodeID: LogKey(testNode)))
        for request in 0..<20 {
            let tag = try #require(RequestTag(id: "request-\(request)", digest: UInt64(request)))
            try await log.append(Self.freshRecords(50, startingAt: request * 50), tag: tag)
        }
        await log.close()

        let compactor = Compactor(reader: LogReader(directory: dir.path), maxPendingKeys: 30)
        compactor.reset(after: 0)
        var covered: LSN = 0
        var slices = 0
        while covered < 1_000 {
            slices += 1
            try compactor.catchUp(through: 1_000)
            let table = try #require(compactor.take())
            compactor.settle(.committed)
            #expect(table.lastLSN % 50 == 0, "slice ends at a request's end, not inside it: \(table.lastLSN)")
            #expect(table.requests.allSatisfy { $0.entry.lastLSN <= table.lastLSN })
            covered = table.lastLSN
        }
        #expect(slices == 20, "each slice holds one request: the bound is below one request's keys")
    }

    @Test func afterAnOutageTheCheckpointerAppliesTheLogInSlicesExactlyOnce() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink, segmentSizeBytes: 4_096, maxPendingKeys: 200)
        try await node.checkpointer.checkpoint()  // learns LSN 0
        sink.setFault(.unreachable)
        var all: [LogRecord] = []
        for batch in 0..<300 {
            let records = Self.freshRecords(10, startingAt: batch * 10)
            try await node.log.append(records)
            all += records
        }
        await #expect(throws: (any Error).self) { try await node.checkpointer.checkpoint() }
        #expect(node.compactor.pending.keys < 200 + 100, "memory stays bounded while PostgreSQL is away")

        sink.setFault(.none)
        try await node.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(all), "every key exactly once")
        #expect(sink.storedLSN(testNode) == 3_000)
        #expect(sink.state.withLock { $0.applied } >= 3_000 / 200, "one checkpoint per slice")
        #expect(!node.compactor.isOverBudget && !node.compactor.isBehind)
        #expect(node.log.segmentCount <= 2, "applied segments were deleted slice by slice")
        await node.log.close()
    }

    @Test func aStartUpReplayOfALargeLogObeysTheSameBound() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        var all: [LogRecord] = []
        do {
            let log = try Log.open(LogConfiguration(directory: dir.path, nodeID: LogKey(testNode)))
            for batch in 0..<100 {
                let records = Self.freshRecords(20, startingAt: batch * 20)
                try await log.append(records)
                all += records
            }
            await log.close()
        }
        let node = try Node(directory: dir.path, sink: sink, maxPendingKeys: 150)
        var configuration = node.checkpointer.configuration
        configuration.maxSlicesPerPass = 3
        let checkpointer = Checkpointer(log: node.log, compactor: node.compactor, sink: sink,
                                        configuration: configuration, logger: Logger(label: "test"))
        try await checkpointer.checkpoint()
        #expect(node.compactor.pending.keys <= 150 + 20)
        #expect(sink.state.withLock { $0.applied } == 3, "one pass applies at most maxSlicesPerPass slices")
        while node.compactor.isBehind { try await checkpointer.checkpoint() }
        #expect(sink.totals == expectedTotals(all))
        await node.log.close()
    }
}

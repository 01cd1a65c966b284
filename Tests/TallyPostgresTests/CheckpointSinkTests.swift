import Foundation
import Testing
import TallyCore
import TallyLog
import TallyPostgres

@Suite struct CheckpointSinkTests {
    private func sortedDeltas(_ keys: [LogKey], _ sum: (Int) -> Int128) -> [KeyDelta] {
        keys.sorted().enumerated().map { KeyDelta(key: $0.element, day: Day(number: 20_000), sum: sum($0.offset)) }
    }

    @Test(arguments: PostgresCheckpointSink.BulkMethod.allCases)
    func insertsThenAddsToTotalsAndMovesTheLSN(method: PostgresCheckpointSink.BulkMethod) async throws {
        let client = try await TestDatabase.client()
        let sink = PostgresCheckpointSink(client: client, chunkRows: 7, bulkMethod: method)  // several chunks
        let node = UUID()
        let keys = TestDatabase.randomKeys(50)
        #expect(try await sink.checkpointLSN(node: node) == 0)

        try await sink.apply(CheckpointBatch(node: node, previousLSN: 0, lsn: 100, deltas: sortedDeltas(keys) { Int128($0 + 1) }))
        try await sink.apply(CheckpointBatch(node: node, previousLSN: 100, lsn: 150, deltas: sortedDeltas(keys) { _ in 1000 }))
        #expect(try await sink.checkpointLSN(node: node) == 150)
        let totals = try await TestDatabase.totals(keys, client: client)
        for (index, key) in keys.sorted().enumerated() {
            #expect(totals[key] == String(index + 1 + 1000))
        }
    }

    @Test(arguments: PostgresCheckpointSink.BulkMethod.allCases)
    func totalsGoBeyondInt64(method: PostgresCheckpointSink.BulkMethod) async throws {
        let client = try await TestDatabase.client()
        let sink = PostgresCheckpointSink(client: client, bulkMethod: method)
        let node = UUID()
        let key = LogKey(UUID())
        let max = Int128(Int64.max)
        try await sink.apply(CheckpointBatch(node: node, previousLSN: 0, lsn: 2, deltas: [KeyDelta(key: key, day: Day(number: 1), sum: max * 2)]))
        try await sink.apply(CheckpointBatch(node: node, previousLSN: 2, lsn: 3, deltas: [KeyDelta(key: key, day: Day(number: 1), sum: max)]))
        #expect(try await TestDatabase.totals([key], client: client)[key] == String(max * 3))
        #expect(String(max * 3) == "27670116110564327421")
    }

    @Test func aWrongPreviousLSNAppliesNothing() async throws {
        let client = try await TestDatabase.client()
        let sink = PostgresCheckpointSink(client: client)
        let node = UUID()
        let keys = TestDatabase.randomKeys(3)
        try await sink.apply(CheckpointBatch(node: node, previousLSN: 0, lsn: 10, deltas: sortedDeltas(keys) { _ in 5 }))
        await #expect(throws: CheckpointSinkError.conflict(node: node, expectedLSN: 3, storedLSN: 10)) {
            try await sink.apply(CheckpointBatch(node: node, previousLSN: 3, lsn: 20, deltas: self.sortedDeltas(keys) { _ in 7 }))
        }
        #expect(try await sink.checkpointLSN(node: node) == 10)
        let totals = try await TestDatabase.totals(keys, client: client)
        #expect(keys.allSatisfy { totals[$0] == "5" })
    }

    @Test func dailyTotalsAreWrittenInTheSameTransactionAndSumToTheTotal() async throws {
        let client = try await TestDatabase.client()
        let sink = PostgresCheckpointSink(client: client, chunkRows: 3)
        let node = UUID()
        let keys = TestDatabase.randomKeys(4).sorted()
        let monday = Day(iso: "2026-11-30")!
        let tuesday = Day(iso: "2026-12-01")!
        var deltas: [KeyDelta] = []
        for (index, key) in keys.enumerated() {
            deltas.append(KeyDelta(key: key, day: monday, sum: Int128(index + 1)))
            deltas.append(KeyDelta(key: key, day: tuesday, sum: 10))
        }
        try await sink.apply(CheckpointBatch(node: node, previousLSN: 0, lsn: 8, deltas: deltas))
        try await sink.apply(CheckpointBatch(node: node, previousLSN: 8, lsn: 9, deltas: [KeyDelta(key: keys[0], day: tuesday, sum: 5)]))
        let rows = try await client.withConnection { connection in
            let result = try connection.execute("""
                SELECT c.key, c.total::text, (SELECT sum(total)::text FROM tally_daily d WHERE d.key = c.key),
                       (SELECT total::text FROM tally_daily d WHERE d.key = c.key AND d.day = '2026-12-01')
                FROM tally_counts c WHERE c.key = ANY($1::uuid[]) ORDER BY c.key
                """, ["{" + keys.map(\.uuidString).joined(separator: ",") + "}"])
            return (0..<result.rowCount).map { row in (1...3).map { result.value(row: row, column: $0) ?? "" } }
        }
        #expect(rows == [["16", "16", "15"], ["12", "12", "10"], ["13", "13", "10"], ["14", "14", "10"]])
    }

    @Test func anEmptyBatchStillMovesTheLSN() async throws {
        let sink = PostgresCheckpointSink(client: try await TestDatabase.client())
        let node = UUID()
        try await sink.apply(CheckpointBatch(node: node, previousLSN: 0, lsn: 4, deltas: []))
        #expect(try await sink.checkpointLSN(node: node) == 4)
    }
}

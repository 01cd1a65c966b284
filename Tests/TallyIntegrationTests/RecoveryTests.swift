import Foundation
import Synchronization
import Testing
import TallyCore
import TallyLog
import TallyPostgres

/// `tally recover`'s engine against a real PostgreSQL.
@Suite struct RecoveryTests {
    /// A crashed node with several segments and no checkpoint; returns its workload.
    private func crashedNode(_ data: TemporaryDirectory) async throws -> (Workload, UUID) {
        let node = try await startNode(data.path, sink: PostgresCheckpointSink(client: PostgresClient(url: TestDatabase.url)),
                                       segmentSizeBytes: 2_048)
        var workload = Workload(keyCount: 30)
        for _ in 0..<40 {
            let batch = workload.next(8)
            try await node.log.append(batch)
            workload.acknowledge(batch)
        }
        await node.log.close()
        return (workload, node.identity.id)
    }

    private func recover(_ data: TemporaryDirectory, dryRun: Bool = false) async throws -> RecoveryReport {
        let sink = PostgresCheckpointSink(client: try await TestDatabase.migratedClient())
        return try await Recovery(walDirectory: data.path + "/wal", sink: sink, dryRun: dryRun).run()
    }

    @Test func recoverAppliesEverythingOnceAndASecondRunIsANoOp() async throws {
        let data = TemporaryDirectory()
        let (workload, node) = try await crashedNode(data)
        let client = try await TestDatabase.migratedClient()
        let segmentsBefore = try FileManager.default.contentsOfDirectory(atPath: data.path + "/wal").filter { $0.hasSuffix(".wal") }
        #expect(segmentsBefore.count > 3)

        let dry = try await recover(data, dryRun: true)
        #expect(dry.records == 320 && dry.appliedLSNs == 1...320 && dry.keys == workload.expected.count)
        #expect(try await TestDatabase.totals(workload.keys, client: client).isEmpty, "a dry run writes nothing")
        #expect(try FileManager.default.contentsOfDirectory(atPath: data.path + "/wal").filter { $0.hasSuffix(".wal") }.count
            == segmentsBefore.count)

        let first = try await recover(data)
        #expect(first.node == node)
        #expect(first.records == 320 && first.checkpointLSNAfter == 320)
        #expect(first.deletedSegments.count == segmentsBefore.count - 1, "all but the last segment")
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)

        let second = try await recover(data)
        #expect(second.appliedLSNs == nil && second.records == 0)
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)

        // The node can start again on the recovered directory and continues its LSNs.
        let restarted = try await startNode(data.path, sink: PostgresCheckpointSink(client: client))
        #expect(restarted.log.openReport.nextLSN == 321)
        await restarted.log.close()
    }

    @Test func aLogLargerThanTheMemoryBoundIsAppliedInSlicesExactlyOnceWithProgress() async throws {
        let data = TemporaryDirectory()
        let (workload, _) = try await crashedNode(data)  // 320 records on 30 keys
        let client = try await TestDatabase.migratedClient()
        var recovery = Recovery(walDirectory: data.path + "/wal", sink: PostgresCheckpointSink(client: client), dryRun: false)
        recovery.maxPendingKeys = 10
        recovery.progressIntervalSeconds = 0
        let progress = Mutex<[ProgressReport.Point]>([])
        recovery.onProgress = { point in progress.withLock { $0.append(point) } }
        let report = try await recovery.run()
        #expect(report.slices >= 3, "30 keys under a bound of 10 need several transactions: \(report.slices)")
        #expect(report.records == 320 && report.checkpointLSNAfter == 320)
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)
        let points = progress.withLock { $0 }
        #expect(points.last?.lsn == 320 && points.last?.fraction == 1)
        #expect(zip(points, points.dropFirst()).allSatisfy { $0.lsn <= $1.lsn })

        #expect(try await recover(data).records == 0, "a second run applies nothing")
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)
    }

    @Test func recoverCutsATornTailAndKeepsACopy() async throws {
        let data = TemporaryDirectory()
        let (workload, _) = try await crashedNode(data)
        let wal = data.path + "/wal"
        let last = try FileManager.default.contentsOfDirectory(atPath: wal).filter { $0.hasSuffix(".wal") }.sorted().last!
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: wal + "/" + last))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0x13, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]))
        try handle.close()

        let report = try await recover(data)
        #expect(report.tornTailBytes == 7)
        #expect(FileManager.default.fileExists(atPath: try #require(report.tornTailBackup)))
        #expect(try await TestDatabase.totals(workload.keys, client: try await TestDatabase.migratedClient()) == workload.expected)
    }

    @Test func recoverAppliesOnlyTheSoundPrefixOfACorruptLog() async throws {
        let data = TemporaryDirectory()
        let (_, _) = try await crashedNode(data)
        let wal = data.path + "/wal"
        let segments = try FileManager.default.contentsOfDirectory(atPath: wal).filter { $0.hasSuffix(".wal") }.sorted()
        let victim = wal + "/" + segments[2]
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: victim)))
        bytes[60] ^= 0xFF  // inside the first frame of the third segment
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        let victimFirstLSN = SegmentName.firstLSN(of: segments[2])!

        let report = try await recover(data)
        #expect(!report.unrecoverable.isEmpty)
        #expect(report.checkpointLSNAfter == victimFirstLSN - 1, "applied exactly the records before the damage")
        let remaining = try FileManager.default.contentsOfDirectory(atPath: wal).filter { $0.hasSuffix(".wal") }.sorted()
        #expect(remaining == Array(segments[2...]), "nothing at or past the corruption is deleted")
    }

    @Test func recoverRefusesWhileADaemonHoldsTheLog() async throws {
        let data = TemporaryDirectory()
        let node = try await startNode(data.path, sink: PostgresCheckpointSink(client: PostgresClient(url: TestDatabase.url)))
        await #expect(throws: LogError.self) { try await recover(data) }
        await node.log.close()
    }
}

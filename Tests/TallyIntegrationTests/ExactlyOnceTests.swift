import Foundation
import Testing
import TallyCore
import TallyLog
import TallyPostgres

/// The guarantee, against a real PostgreSQL: every acknowledged increment is counted once,
/// whatever step of a checkpoint a crash interrupts.
@Suite struct ExactlyOnceTests {
    enum CrashPoint: CaseIterable, Sendable {
        case beforeTransaction, transactionRolledBack, afterCommitBeforeDelete, commitOutcomeUnknown, notCommittedOutcomeUnknown
    }

    @Test(arguments: CrashPoint.allCases)
    func aCrashAtAnyCheckpointStepLosesAndDoublesNothing(at point: CrashPoint) async throws {
        let data = TemporaryDirectory()
        let client = try await TestDatabase.migratedClient()
        let sink = FaultySink(real: PostgresCheckpointSink(client: client, chunkRows: 16))
        var workload = Workload(keyCount: 64)

        do {
            let node = try await startNode(data.path, sink: sink, segmentSizeBytes: 4_096)
            for _ in 0..<20 {
                let batch = workload.next(10)
                try await node.log.append(batch)
                workload.acknowledge(batch)
            }
            try await node.checkpointer.checkpoint()
            for _ in 0..<20 {
                let batch = workload.next(10)
                try await node.log.append(batch)
                workload.acknowledge(batch)
            }
            switch point {
            case .beforeTransaction: break
            case .transactionRolledBack: sink.set(.failBeforeCommit)
            case .afterCommitBeforeDelete: break
            case .commitOutcomeUnknown: sink.set(.commitThenLoseConnection)
            case .notCommittedOutcomeUnknown: sink.set(.loseConnectionBeforeCommit)
            }
            if point != .beforeTransaction { _ = try? await node.checkpointer.checkpoint() }
            sink.set(.none)
            await node.log.close()  // crash: only files and PostgreSQL survive
        }

        let restarted = try await startNode(data.path, sink: sink, segmentSizeBytes: 4_096)
        let more = workload.next(5)
        try await restarted.log.append(more)
        workload.acknowledge(more)
        try await restarted.checkpointer.checkpoint()
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)
        #expect(try await sink.checkpointLSN(node: restarted.identity.id) == 405)
        #expect(restarted.log.segmentCount == 1, "applied segments are deleted")
        await restarted.log.close()
    }

    @Test func twoNodesOnOneDatabaseCheckpointConcurrentlyWithoutDeadlock() async throws {
        let client = try await TestDatabase.migratedClient()
        let sharedKeys = (0..<200).map { _ in LogKey(UUID()) }
        let directories = [TemporaryDirectory(), TemporaryDirectory()]
        var nodes: [CountingNode] = []
        for directory in directories {
            nodes.append(try await startNode(directory.path,
                                             sink: PostgresCheckpointSink(client: PostgresClient(url: TestDatabase.url), chunkRows: 50)))
        }
        let started = nodes
        let expected = try await withThrowingTaskGroup(of: [LogKey: Int128].self) { group in
            for node in started {
                group.addTask {
                    var sums: [LogKey: Int128] = [:]
                    for round in 0..<6 {
                        // Every round touches every shared key, so concurrent checkpoints overlap fully.
                        let batch = sharedKeys.shuffled().map { LogRecord(key: $0, value: Int64(round + 1), arrivalMillis: 0) }
                        for chunk in stride(from: 0, to: batch.count, by: 50) {
                            try await node.log.append(Array(batch[chunk..<min(chunk + 50, batch.count)]))
                        }
                        for record in batch { sums[record.key, default: 0] += Int128(record.value) }
                        try await node.checkpointer.checkpoint()
                    }
                    return sums
                }
            }
            var total: [LogKey: Int128] = [:]
            for try await sums in group {
                for (key, sum) in sums { total[key, default: 0] += sum }
            }
            return total
        }
        #expect(try await TestDatabase.totals(sharedKeys, client: client) == expected)
        #expect(expected.values.allSatisfy { $0 == 2 * 21 })
        for node in nodes { await node.log.close() }
    }

    @Test func int64MaxTwiceToOneKeyBothArrive() async throws {
        let data = TemporaryDirectory()
        let client = try await TestDatabase.migratedClient()
        let node = try await startNode(data.path, sink: PostgresCheckpointSink(client: client))
        let key = LogKey(UUID())
        try await node.log.append(LogRecord(key: key, value: .max, arrivalMillis: 0))
        try await node.log.append(LogRecord(key: key, value: .max, arrivalMillis: 0))
        try await node.checkpointer.checkpoint()
        #expect(try await TestDatabase.totals([key], client: client)[key] == Int128(Int64.max) * 2)
        await node.log.close()
    }

    @Test func aRestartReplaysTheLogAfterTheCheckpointAndContinuesItsLSNs() async throws {
        let data = TemporaryDirectory()
        let client = try await TestDatabase.migratedClient()
        let sink = PostgresCheckpointSink(client: client)
        var workload = Workload(keyCount: 10)
        let first = try await startNode(data.path, sink: sink)
        #expect(first.identity.origin == .generated)
        let batch = workload.next(30)
        try await first.log.append(batch)
        workload.acknowledge(batch)
        await first.log.close()  // crash before any checkpoint

        let second = try await startNode(data.path, sink: sink)
        #expect(second.identity.id == first.identity.id && second.identity.origin == .stored)
        #expect(second.log.openReport.nextLSN == 31)
        try await second.checkpointer.checkpoint()
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)
        await second.log.close()

        // A node whose wal directory was emptied waits for its stored checkpoint, then continues after it.
        try FileManager.default.removeItem(atPath: data.path + "/wal")
        let third = try await startNode(data.path, sink: sink)
        await #expect(throws: LogError.self) { try await third.log.append(workload.next(1)) }
        try await third.checkpointer.checkpoint()
        #expect(try await third.log.append(workload.next(1)) == 31)
        await third.log.close()
    }

    @Test func finalCheckpointAtShutdownLeavesNothingPending() async throws {
        let data = TemporaryDirectory()
        let client = try await TestDatabase.migratedClient()
        let node = try await startNode(data.path, sink: PostgresCheckpointSink(client: client))
        var workload = Workload(keyCount: 5)
        let batch = workload.next(100)
        try await node.log.append(batch)
        workload.acknowledge(batch)
        try await node.shutdown()
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)
        #expect(node.compactor.pending.records == 0)
    }
}

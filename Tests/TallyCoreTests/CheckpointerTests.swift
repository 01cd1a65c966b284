import Foundation
import Testing
import TallyCore
import TallyLog

@Suite struct CheckpointerTests {
    @Test func aCheckpointAppliesEverythingDurableAndDeletesAppliedSegments() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink, segmentSizeBytes: 4_096)
        var generator = SplitMix64(state: 7)
        var all: [LogRecord] = []
        for _ in 0..<100 {
            let batch = randomRecords(8, keys: 50, using: &generator)
            try await node.log.append(batch)
            all += batch
        }
        #expect(node.log.segmentCount > 2)
        try await node.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(all))
        #expect(sink.storedLSN(testNode) == 800)
        #expect(node.log.segmentCount == 1, "every closed segment was applied and deleted")
        #expect(node.checkpointer.status.checkpointLSN == 800)

        // An idle pass creates nothing and changes nothing.
        try await node.checkpointer.checkpoint()
        #expect(node.log.segmentCount == 1)
        #expect(sink.state.withLock { $0.applied } == 1)
        await node.log.close()
    }

    @Test func aTransactionThatRolledBackIsRetriedWithTheSameSums() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink)
        var generator = SplitMix64(state: 8)
        let first = randomRecords(50, keys: 5, using: &generator)
        try await node.log.append(first)
        try await node.checkpointer.checkpoint()  // learns LSN 0 and applies

        let second = randomRecords(50, keys: 5, using: &generator)
        try await node.log.append(second)
        sink.setFault(.failBeforeCommit)
        await #expect(throws: MemorySink.SinkDown.self) { try await node.checkpointer.checkpoint() }
        #expect(node.checkpointer.status.sinkAvailable == false)
        let third = randomRecords(50, keys: 5, using: &generator)
        try await node.log.append(third)
        sink.setFault(.none)
        try await node.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(first + second + third))
        #expect(node.checkpointer.status.sinkAvailable)
        await node.log.close()
    }

    @Test func anInDoubtCommitIsNeverAppliedTwice() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink)
        var generator = SplitMix64(state: 9)
        let first = randomRecords(40, keys: 4, using: &generator)
        try await node.log.append(first)
        sink.setFault(.commitThenLoseConnection)
        await #expect(throws: CheckpointSinkError.self) { try await node.checkpointer.checkpoint() }
        sink.setFault(.none)
        let second = randomRecords(40, keys: 4, using: &generator)
        try await node.log.append(second)
        try await node.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(first + second), "the committed batch counts once")
        #expect(sink.storedLSN(testNode) == 80)
        await node.log.close()
    }

    @Test func anInDoubtCommitThatDidNotHappenIsRebuiltFromTheLog() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink)
        var generator = SplitMix64(state: 10)
        let records = randomRecords(40, keys: 4, using: &generator)
        try await node.log.append(records)
        try await node.checkpointer.checkpoint()
        let more = randomRecords(40, keys: 4, using: &generator)
        try await node.log.append(more)
        // The transaction never committed, but the caller is told the outcome is unknown: the
        // checkpointer must read back LSN 40 and rebuild 41…80 from the log.
        sink.setFault(.loseConnectionBeforeCommit)
        await #expect(throws: CheckpointSinkError.self) { try await node.checkpointer.checkpoint() }
        #expect(sink.storedLSN(testNode) == 40)
        sink.setFault(.none)
        try await node.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(records + more))
        await node.log.close()
    }

    @Test func theSinkBeingDownAtStartOnlyDelaysCounting() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        sink.setFault(.unreachable)
        let node = try Node(directory: dir.path, sink: sink)
        var generator = SplitMix64(state: 11)
        let records = randomRecords(30, keys: 3, using: &generator)
        try await node.log.append(records)  // served while the sink is down
        await #expect(throws: MemorySink.SinkDown.self) { try await node.checkpointer.checkpoint() }
        #expect(node.compactor.isStarted == false)
        sink.setFault(.none)
        try await node.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(records))
        await node.log.close()
    }

    @Test func int64MaxTwiceReachesTheSinkExactly() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink)
        let key = LogKey(high: 42, low: 42)
        try await node.log.append(LogRecord(key: key, value: .max, arrivalMillis: 0))
        try await node.log.append(LogRecord(key: key, value: .max, arrivalMillis: 0))
        try await node.checkpointer.checkpoint()
        #expect(sink.totals[key] == Int128(Int64.max) * 2)
        await node.log.close()
    }

    /// Crash at each step of a checkpoint (modelled by dropping the node and opening a new
    /// one on the same directory and sink), then restart: totals are exact.
    @Test(arguments: CrashPoint.allCases)
    func aCrashAtAnyStepOfACheckpointLosesAndDoublesNothing(at point: CrashPoint) async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        var generator = SplitMix64(state: UInt64(point.rawValue) + 100)
        var all: [LogRecord] = []
        do {
            let node = try Node(directory: dir.path, sink: sink, segmentSizeBytes: 2_048)
            for _ in 0..<30 {
                let batch = randomRecords(5, keys: 20, using: &generator)
                try await node.log.append(batch)
                all += batch
            }
            try await node.checkpointer.checkpoint()  // a first checkpoint so the crash is mid-stream
            for _ in 0..<30 {
                let batch = randomRecords(5, keys: 20, using: &generator)
                try await node.log.append(batch)
                all += batch
            }
            switch point {
            case .beforeTransaction:
                break
            case .afterUpsertsBeforeCommit:
                sink.setFault(.failBeforeCommit)
                _ = try? await node.checkpointer.checkpoint()
            case .afterCommitBeforeDelete:
                sink.setFault(.commitThenLoseConnection)
                _ = try? await node.checkpointer.checkpoint()
            case .midDelete:
                // Snapshot the segments, checkpoint (which deletes the applied ones oldest
                // first), then put back all deleted segments but the oldest: the state of a
                // crash after the first unlink.
                let before = try segmentSnapshot(dir.path)
                try await node.checkpointer.checkpoint()
                let after = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
                let deleted = before.keys.sorted().filter { !after.contains($0) }
                #expect(deleted.count >= 2)
                for name in deleted.dropFirst() {
                    try before[name]!.write(to: URL(fileURLWithPath: dir.path + "/" + name))
                }
            }
            sink.setFault(.none)
            await node.log.close()  // the crash: nothing of the node survives but its files
        }
        let restarted = try Node(directory: dir.path, sink: sink, segmentSizeBytes: 2_048)
        let more = randomRecords(7, keys: 20, using: &generator)
        try await restarted.log.append(more)
        all += more
        try await restarted.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(all))
        #expect(sink.storedLSN(testNode) == LSN(all.count))
        await restarted.log.close()
    }

    private func segmentSnapshot(_ directory: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".wal") {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
        }
        return files
    }

    enum CrashPoint: Int, CaseIterable, Sendable {
        case beforeTransaction, afterUpsertsBeforeCommit, afterCommitBeforeDelete, midDelete
    }
}

import Foundation
import Testing
import TallyCore
import TallyLog

/// The checkpointer never adopts a stored LSN it cannot account for: it refuses for good
/// (appends held, no more passes), or, when PostgreSQL merely went back, replays the log.
@Suite struct PositionRefusalTests {
    @Test func aCheckpointMovedByAnotherProcessIsRefusedNotAdopted() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink)
        var generator = SplitMix64(state: 21)
        let first = randomRecords(20, keys: 4, using: &generator)
        try await node.log.append(first)
        try await node.checkpointer.checkpoint()
        #expect(sink.storedLSN(testNode) == 20)

        sink.setStored(testNode, 35)  // another process with this node id checkpointed
        let second = randomRecords(10, keys: 4, using: &generator)
        try await node.log.append(second)
        await #expect(throws: (any Error).self) { try await node.checkpointer.checkpoint() }
        #expect(node.checkpointer.status.positionError == .movedElsewhere(storedLSN: 35, knownLSN: 20, logEnd: 30))
        #expect(sink.storedLSN(testNode) == 35, "the foreign position is left alone")
        #expect(sink.totals == expectedTotals(first), "nothing of this node's later records was applied")

        // Lasting: appends stay refused and every later pass refuses the same way.
        await #expect(throws: LogError.self) { try await node.log.append(randomRecords(1, keys: 4, using: &generator)) }
        sink.setStored(testNode, 20)
        await #expect(throws: NodePositionError.self) { try await node.checkpointer.checkpoint() }
        #expect(node.log.holdReason?.contains("another process") == true)
        await node.log.close()
    }

    @Test func onlyTheTargetOfAnInDoubtCommitIsRecognisedAsOurs() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink)
        var generator = SplitMix64(state: 22)
        try await node.log.append(randomRecords(10, keys: 4, using: &generator))
        try await node.checkpointer.checkpoint()
        try await node.log.append(randomRecords(10, keys: 4, using: &generator))
        sink.setFault(.loseConnectionBeforeCommit)  // target 20, outcome unknown
        await #expect(throws: CheckpointSinkError.self) { try await node.checkpointer.checkpoint() }
        sink.setFault(.none)
        sink.setStored(testNode, 25)  // neither 10 (not committed) nor 20 (committed)
        await #expect(throws: NodePositionError.self) { try await node.checkpointer.checkpoint() }
        #expect(node.checkpointer.status.positionError?.kind == "checkpoint_moved_elsewhere")
        await node.log.close()
    }

    @Test func aStoredLSNBeforeTheFirstRecordOnDiskIsRefusedWithoutATrap() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        var generator = SplitMix64(state: 23)
        do {
            let node = try Node(directory: dir.path, sink: sink, segmentSizeBytes: 2_048)
            for _ in 0..<20 { try await node.log.append(randomRecords(8, keys: 30, using: &generator)) }
            try await node.checkpointer.checkpoint()  // deletes the applied segments
            try await node.log.append(randomRecords(8, keys: 30, using: &generator))
            #expect(try #require(node.log.firstLSNOnDisk) > 1)
            await node.log.close()
        }
        sink.setStored(testNode, 0, totals: [:])  // PostgreSQL restored to before any checkpoint
        let restarted = try Node(directory: dir.path, sink: sink, segmentSizeBytes: 2_048)
        await #expect(throws: NodePositionError.self) { try await restarted.checkpointer.checkpoint() }
        guard case .recordsMissing(0, let first)? = restarted.checkpointer.status.positionError else {
            Issue.record("expected records_missing, got \(String(describing: restarted.checkpointer.status.positionError))")
            return
        }
        #expect(first == restarted.log.firstLSNOnDisk)
        await #expect(throws: LogError.self) { try await restarted.log.append(randomRecords(1, keys: 3, using: &generator)) }
        #expect(sink.storedLSN(testNode) == 0 && sink.totals.isEmpty, "nothing applied over the gap")
        await restarted.log.close()
    }

    @Test func aStoredLSNThatWentBackIsReplayedFromTheKeptSegments() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink, segmentSizeBytes: 2_048, keepCheckpoints: 2)
        var generator = SplitMix64(state: 24)
        var all: [LogRecord] = []
        for _ in 0..<10 {
            let batch = randomRecords(8, keys: 30, using: &generator)
            try await node.log.append(batch)
            all += batch
        }
        try await node.checkpointer.checkpoint()
        let atFirstCheckpoint = (lsn: sink.storedLSN(testNode), totals: sink.totals)
        for _ in 0..<10 {
            let batch = randomRecords(8, keys: 30, using: &generator)
            try await node.log.append(batch)
            all += batch
        }
        try await node.checkpointer.checkpoint()
        #expect(try #require(node.log.firstLSNOnDisk) <= atFirstCheckpoint.lsn + 1, "the last two checkpoints stay replayable")

        // A standby promoted without the last commit: row and totals as at the first checkpoint.
        sink.setStored(testNode, atFirstCheckpoint.lsn, totals: atFirstCheckpoint.totals)
        let more = randomRecords(8, keys: 30, using: &generator)
        try await node.log.append(more)
        all += more
        await #expect(throws: CheckpointSinkError.self) { try await node.checkpointer.checkpoint() }
        #expect(node.checkpointer.status.regressions == 1)
        #expect(node.checkpointer.status.isHealingRegression)
        try await node.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(all), "the replay healed the totals")
        #expect(!node.checkpointer.status.isHealingRegression)
        #expect(node.checkpointer.status.positionError == nil)
        await node.log.close()
    }
}

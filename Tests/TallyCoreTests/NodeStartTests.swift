import Foundation
import Logging
import Testing
import TallyCore
import TallyLog

/// How a node starts: when it may take writes before PostgreSQL answers, and where its
/// LSNs continue when it may not.
@Suite struct NodeStartTests {
    private func start(_ directory: String, sink: MemorySink, requested: UUID? = nil) async throws -> CountingNode {
        var options = CountingNode.Options(dataDirectory: directory)
        options.requestedNodeID = requested
        options.segmentSizeBytes = 2_048
        return try await CountingNode.start(options, sink: sink, logger: Logger(label: "test"))
    }

    private func record(_ value: Int64 = 1) -> LogRecord {
        LogRecord(key: LogKey(high: 1, low: 2), value: value, arrivalMillis: 0)
    }

    @Test func aNewNodeAndAProvenRestartTakeWritesWhilePostgresIsDown() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        sink.setFault(.unreachable)
        let node = try await start(dir.path, sink: sink)
        #expect(try await node.log.append(record()) == 1, "a random id cannot have a checkpoint")
        await node.log.close()
        let restarted = try await start(dir.path, sink: sink)
        #expect(try await restarted.log.append(record()) == 2, "the log reaches everything its fence says was sent")
        sink.setFault(.none)
        try await restarted.checkpointer.checkpoint()
        #expect(sink.storedLSN(restarted.identity.id) == 2)
        await restarted.log.close()
    }

    @Test func aKnownNodeOnANewDiskContinuesAfterItsStoredCheckpoint() async throws {
        let sink = MemorySink()
        let id = UUID()
        sink.setStored(id, 100, totals: [LogKey(high: 1, low: 2): 100])  // 100 increments of 1, checkpointed
        let fresh = TemporaryDirectory()
        let node = try await start(fresh.path, sink: sink, requested: id)
        #expect(node.identity.origin == .requested)
        await #expect(throws: LogError.self) { try await node.log.append(record()) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: fresh.path + "/wal").filter { $0.hasSuffix(".wal") }.isEmpty)
        try await node.checkpointer.checkpoint()
        for _ in 0..<150 { try await node.log.append(record()) }
        #expect(node.log.durableLSN == 250)
        try await node.checkpointer.checkpoint()
        #expect(sink.totals[LogKey(high: 1, low: 2)] == 250, "100 before the new disk + 150 after")
        #expect(sink.storedLSN(id) == 250)
        await node.log.close()
    }

    @Test func aWalRestoredFromAnOlderBackupIsRefusedForGood() async throws {
        let dir = TemporaryDirectory()
        let backup = TemporaryDirectory()
        let sink = MemorySink()
        do {
            let node = try await start(dir.path, sink: sink)
            for _ in 0..<10 { try await node.log.append(record()) }
            await node.log.close()
        }
        try FileManager.default.removeItem(atPath: backup.path)
        try FileManager.default.copyItem(atPath: dir.path + "/wal", toPath: backup.path)
        do {
            let node = try await start(dir.path, sink: sink)
            for _ in 0..<20 { try await node.log.append(record()) }
            try await node.checkpointer.checkpoint()
            #expect(sink.storedLSN(node.identity.id) == 30)
            await node.log.close()
        }
        try FileManager.default.removeItem(atPath: dir.path + "/wal")
        try FileManager.default.copyItem(atPath: backup.path, toPath: dir.path + "/wal")

        let restored = try await start(dir.path, sink: sink)
        #expect(restored.log.holdReason != nil, "its end (10) is below the fence (30): it cannot prove its position")
        await #expect(throws: NodePositionError.self) { try await restored.checkpointer.checkpoint() }
        #expect(restored.checkpointer.status.positionError == .aheadOfLog(storedLSN: 30, logEnd: 10, takenSinceStart: nil))
        for _ in 0..<3 {
            await #expect(throws: LogError.self) { try await restored.log.append(record()) }
            await #expect(throws: NodePositionError.self) { try await restored.checkpointer.checkpoint() }
        }
        #expect(sink.storedLSN(restored.identity.id) == 30 && sink.totals[LogKey(high: 1, low: 2)] == 30)
        await restored.log.close()
    }

    @Test func aCommitInDoubtAtACrashIsRecognisedAsOursAfterTheRestart() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let id: UUID
        do {
            let node = try await start(dir.path, sink: sink)
            id = node.identity.id
            for _ in 0..<10 { try await node.log.append(record()) }
            try await node.checkpointer.checkpoint()
            for _ in 0..<10 { try await node.log.append(record()) }
            sink.setFault(.commitThenLoseConnection)  // committed 20, and then the node "crashes"
            await #expect(throws: CheckpointSinkError.self) { try await node.checkpointer.checkpoint() }
            sink.setFault(.none)
            await node.log.close()
        }
        // The fence recorded 20 as attempted before the COMMIT: the row's 20 is this node's own.
        let restarted = try await start(dir.path, sink: sink)
        try await restarted.checkpointer.checkpoint()
        #expect(restarted.checkpointer.status.positionError == nil)
        #expect(sink.storedLSN(id) == 20 && sink.totals[LogKey(high: 1, low: 2)] == 20)
        await restarted.log.close()
    }

    @Test func aWholeDataDirectoryRestoredFromABackupIsCaughtAtTheFirstRead() async throws {
        let dir = TemporaryDirectory()
        let backup = TemporaryDirectory()
        let sink = MemorySink()
        do {
            let node = try await start(dir.path, sink: sink)
            for _ in 0..<10 { try await node.log.append(record()) }
            try await node.checkpointer.checkpoint()
            await node.log.close()
        }
        try FileManager.default.removeItem(atPath: backup.path)
        try FileManager.default.copyItem(atPath: dir.path, toPath: backup.path)  // wal, node-id and fence
        do {
            let node = try await start(dir.path, sink: sink)
            for _ in 0..<20 { try await node.log.append(record()) }
            try await node.checkpointer.checkpoint()
            await node.log.close()
        }
        try FileManager.default.removeItem(atPath: dir.path)
        try FileManager.default.copyItem(atPath: backup.path, toPath: dir.path)

        // The restored fence agrees with the restored log, so the node takes writes at once…
        let restored = try await start(dir.path, sink: sink)
        for _ in 0..<3 { try await restored.log.append(record()) }
        // …and its first read of PostgreSQL (stored 30, above the restored fence's 10) refuses:
        // from here a restore and another process with this id look alike, and the message
        // names the LSNs to salvage either way.
        await #expect(throws: NodePositionError.self) { try await restored.checkpointer.checkpoint() }
        #expect(restored.checkpointer.status.positionError == .movedElsewhere(storedLSN: 30, knownLSN: 10, logEnd: 13))
        #expect(restored.checkpointer.status.positionError?.description.contains("--salvage-from 11") == true)
        await #expect(throws: LogError.self) { try await restored.log.append(record()) }
        await restored.log.close()
    }

    @Test func aCheckpointMovedPastEverythingThisDirectorySentIsRefusedAtStart() async throws {
        let original = TemporaryDirectory()
        let clone = TemporaryDirectory()
        let sink = MemorySink()
        do {
            let node = try await start(original.path, sink: sink)
            for _ in 0..<5 { try await node.log.append(record()) }
            try await node.checkpointer.checkpoint()
            await node.log.close()
        }
        try FileManager.default.removeItem(atPath: clone.path)
        try FileManager.default.copyItem(atPath: original.path, toPath: clone.path)
        do {  // the clone runs while the original is down, and checkpoints past it
            let node = try await start(clone.path, sink: sink)
            for _ in 0..<9 { try await node.log.append(record()) }
            try await node.checkpointer.checkpoint()
            await node.log.close()
        }
        // The original's log (end 5) would not even be behind 14 in a way it can tell; its
        // fence says it never sent more than 5.
        let restarted = try await start(original.path, sink: sink)
        for _ in 0..<20 { try await restarted.log.append(record()) }  // its own log passes 14 meanwhile
        await #expect(throws: NodePositionError.self) { try await restarted.checkpointer.checkpoint() }
        #expect(restarted.checkpointer.status.positionError == .movedElsewhere(storedLSN: 14, knownLSN: 5, logEnd: 25))
        await restarted.log.close()
    }

    @Test func twoDataDirectoriesWithOneNodeIdAreCaughtByTheSecondToCheckpoint() async throws {
        let original = TemporaryDirectory()
        let clone = TemporaryDirectory()
        let sink = MemorySink()
        do {
            let node = try await start(original.path, sink: sink)
            for _ in 0..<5 { try await node.log.append(record()) }
            try await node.checkpointer.checkpoint()
            await node.log.close()
        }
        try FileManager.default.removeItem(atPath: clone.path)
        try FileManager.default.copyItem(atPath: original.path, toPath: clone.path)
        let first = try await start(original.path, sink: sink)
        let second = try await start(clone.path, sink: sink)
        #expect(first.identity.id == second.identity.id)
        try await first.checkpointer.checkpoint()
        try await second.checkpointer.checkpoint()
        for _ in 0..<4 { try await first.log.append(record()) }
        for _ in 0..<7 { try await second.log.append(record(10)) }
        try await first.checkpointer.checkpoint()  // moves the shared row 5 → 9
        await #expect(throws: (any Error).self) { try await second.checkpointer.checkpoint() }
        #expect(second.checkpointer.status.positionError == .movedElsewhere(storedLSN: 9, knownLSN: 5, logEnd: 12))
        #expect(sink.totals[LogKey(high: 1, low: 2)] == 9, "the clone's records were not mixed in")
        await first.log.close()
        await second.log.close()
    }
}

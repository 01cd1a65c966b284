import Foundation
import Synchronization
import Testing
@testable import TallyLog

/// A log whose owner does not yet know where its LSNs continue holds appends, and never
/// hands out an LSN that may already mean something else.
@Suite struct HoldTests {
    private func heldConfiguration(_ directory: String) -> LogConfiguration {
        var config = configuration(directory)
        config.holdAppendsReason = "test: position unknown"
        return config
    }

    @Test func anEmptyHeldLogCreatesNothingUntilReleasedThenStartsAfterTheGivenLSN() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(heldConfiguration(dir.path))
        #expect(try segmentFiles(dir.path).isEmpty, "no segment claims an LSN before the owner names one")
        #expect(log.firstLSNOnDisk == nil && !log.acceptsAppends)
        await #expect(throws: LogError.appendsHeld(reason: "test: position unknown")) {
            try await log.append(records(1))
        }
        #expect(try await log.releaseAppends(continuingAfter: 250) == 251)
        #expect(try segmentFiles(dir.path) == [SegmentName.fileName(firstLSN: 251)])
        #expect(try await log.append(records(2)) == 252)
        #expect(log.firstLSNOnDisk == 251)
        await log.close()
        #expect(try readAll(dir.path, from: 251).map(\.0) == [251, 252])
    }

    @Test func aHeldLogThatEndsBeforeTheGivenLSNStaysHeld() async throws {
        let dir = TemporaryDirectory()
        let first = try Log.open(configuration(dir.path))
        try await first.append(records(10))
        await first.close()

        let log = try Log.open(heldConfiguration(dir.path))
        await #expect(throws: LogError.endsBefore(lsn: 11, logEnd: 10)) {
            try await log.releaseAppends(continuingAfter: 11)
        }
        #expect(log.holdReason != nil, "still held: appending would reuse LSN 11")
        await #expect(throws: LogError.self) { try await log.append(records(1)) }
        #expect(try await log.releaseAppends(continuingAfter: 10) == 11)
        #expect(try await log.append(records(1)) == 11)
        await log.close()
    }

    @Test func holdingRefusesLaterAppendsAndKeepsWhatWasAcknowledged() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(configuration(dir.path))
        try await log.append(records(3))
        log.holdAppends(reason: "refused for good")
        await #expect(throws: LogError.appendsHeld(reason: "refused for good")) { try await log.append(records(1)) }
        #expect(!log.acceptsAppends)
        await log.close()
        #expect(try readAll(dir.path).count == 3)
    }

    @Test func theReaderRefusesToStartAfterTheLSNItWasAskedFor() async throws {
        let dir = TemporaryDirectory()
        var config = configuration(dir.path)
        config.firstLSN = 101
        let log = try Log.open(config)
        try await log.append(records(5))
        await log.close()
        #expect(throws: LogReadError.self) {
            try LogReader(directory: dir.path).forEachRecord(from: 1, through: 105) { _, _ in }
        }
        var visited: [LSN] = []
        try LogReader(directory: dir.path).forEachRecord(from: 101, through: 105) { lsn, _ in visited.append(lsn) }
        #expect(visited == Array(101...105))
    }

    @Test func segmentsInASubdirectoryRefuseTheOpen() async throws {
        let dir = TemporaryDirectory()
        let first = try Log.open(configuration(dir.path))
        try await first.append(records(4))
        await first.close()
        try FileManager.default.createDirectory(atPath: dir.file("old"), withIntermediateDirectories: false)
        for name in try segmentFiles(dir.path) {
            try FileManager.default.moveItem(atPath: dir.file(name), toPath: dir.file("old/" + name))
        }
        #expect(throws: LogError.self) { try Log.open(configuration(dir.path)) }
        let problems = try LogInspection.inspect(directory: dir.path).corruption
        #expect(problems.contains { $0.message.contains("subdirectory") }, "\(problems)")
        #expect(try LogInspection.inspect(directory: dir.path).corruption.count == 1)
    }

    @Test func aCreatedLogDirectoryIsSyncedIntoItsParent() async throws {
        #expect(SystemCalls.parentDirectory(of: "/a/b/wal") == "/a/b")
        #expect(SystemCalls.parentDirectory(of: "/a/b/wal/") == "/a/b")
        #expect(SystemCalls.parentDirectory(of: "wal") == ".")
        #expect(SystemCalls.parentDirectory(of: "/wal") == "/")
        let dir = TemporaryDirectory()
        let synced = Mutex<[String]>([])
        SystemCalls.directorySyncObserver.withLock { $0 = { path in synced.withLock { $0.append(path) } } }
        defer { SystemCalls.directorySyncObserver.withLock { $0 = nil } }
        let log = try Log.open(configuration(dir.file("wal")))
        await log.close()
        #expect(synced.withLock { $0 }.contains(dir.path), "the new wal/ entry was synced into \(dir.path)")
    }
}

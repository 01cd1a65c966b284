import Foundation
import Testing
@testable import TallyLog

@Suite struct RoundTripTests {
    @Test func manyBatchesAcrossSegmentsReadBackInOrderAndReopenContinues() async throws {
        let dir = TemporaryDirectory()
        let batches = (0..<200).map { records(1 + $0 % 7, startingAt: $0 * 10) }
        try await writeLog(dir.path, batches: batches, segmentSizeBytes: 2_048)

        let expected = batches.flatMap { $0 }
        let read = try readAll(dir.path)
        #expect(read.map(\.1) == expected)
        #expect(read.map(\.0) == Array(1...LSN(expected.count)))
        #expect(try segmentFiles(dir.path).count > 5)

        let log = try Log.open(configuration(dir.path, segmentSizeBytes: 2_048))
        #expect(log.openReport.nextLSN == LSN(expected.count + 1))
        #expect(log.openReport.tornTail == nil)
        let lsn = try await log.append(records(3, startingAt: 99_999))
        #expect(lsn == LSN(expected.count + 3))
        await log.close()
        #expect(try readAll(dir.path).count == expected.count + 3)
        #expect(try LogInspection.inspect(directory: dir.path).isSound)
    }

    @Test func concurrentAppendersShareFramesAndEveryAckIsDurable() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(configuration(dir.path))
        let appenders = 64
        let perAppender = 40
        let acknowledged = try await withThrowingTaskGroup(of: [(LSN, LogRecord)].self) { group in
            for appender in 0..<appenders {
                group.addTask {
                    var mine: [(LSN, LogRecord)] = []
                    for index in 0..<perAppender {
                        let record = records(1, startingAt: appender * 1_000 + index)[0]
                        mine.append((try await log.append(record), record))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(log.durableLSN == LSN(appenders * perAppender))
        await log.close()

        let onDisk = Dictionary(uniqueKeysWithValues: try readAll(dir.path).map { ($0.0, $0.1) })
        #expect(onDisk.count == appenders * perAppender)
        for (lsn, record) in acknowledged {
            #expect(onDisk[lsn] == record, "acknowledged LSN \(lsn) must hold its record")
        }
        let frameCount = try segmentFiles(dir.path).reduce(0) { $0 + (try frames(of: dir.file($1)).count) }
        #expect(frameCount < appenders * perAppender, "group commit puts several appends in one frame")
    }

    @Test func multiRecordAppendLandsInOneFrame() async throws {
        let dir = TemporaryDirectory()
        try await writeLog(dir.path, batches: [records(1), records(500, startingAt: 1), records(2, startingAt: 501)])
        let frameList = try frames(of: dir.file(SegmentName.fileName(firstLSN: 1)))
        #expect(frameList.map(\.header.recordCount) == [1, 500, 2])
        #expect(frameList.map(\.header.firstLSN) == [1, 2, 502])
    }

    @Test func readerStartsAtAnyLSNAndStopsAtABound() async throws {
        let dir = TemporaryDirectory()
        try await writeLog(dir.path, batches: (0..<50).map { records(4, startingAt: $0 * 4) }, segmentSizeBytes: 1_024)
        var seen: [LSN] = []
        try LogReader(directory: dir.path).forEachRecord(from: 77, through: 150) { lsn, _ in seen.append(lsn) }
        #expect(seen == Array(77...150))
    }

    @Test func rollStartsANewSegmentOnlyWhenTheActiveOneHasFrames() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(configuration(dir.path))
        #expect(try await log.rollSegment() == 1)
        #expect(try segmentFiles(dir.path).count == 1)
        try await log.append(records(5))
        #expect(try await log.rollSegment() == 6)
        #expect(try await log.rollSegment() == 6)
        #expect(try segmentFiles(dir.path) == [SegmentName.fileName(firstLSN: 1), SegmentName.fileName(firstLSN: 6)])
        await log.close()

        // An empty active segment still tells where the log continues.
        let reopened = try Log.open(configuration(dir.path))
        #expect(reopened.openReport.nextLSN == 6)
        await reopened.close()
    }

    @Test func truncateDeletesWholeAppliedSegmentsButNeverTheActiveOne() async throws {
        let dir = TemporaryDirectory()
        let log = try Log.open(configuration(dir.path))
        for batch in 0..<4 {
            try await log.append(records(10, startingAt: batch * 10))
            try await log.rollSegment()
        }
        // Segments start at 1, 11, 21, 31 and the empty active one at 41.
        #expect(try segmentFiles(dir.path).count == 5)
        let partial = try await log.truncate(through: 25)
        #expect(partial.deletedSegments == [SegmentName.fileName(firstLSN: 1), SegmentName.fileName(firstLSN: 11)])
        #expect(partial.deletedThroughLSN == 20)
        let all = try await log.truncate(through: 1_000)
        #expect(all.deletedSegments.count == 2)
        #expect(try segmentFiles(dir.path) == [SegmentName.fileName(firstLSN: 41)])
        try await log.append(records(1))
        await log.close()

        let reopened = try Log.open(configuration(dir.path))
        #expect(reopened.openReport.nextLSN == 42)
        await reopened.close()
        #expect(try readAll(dir.path).map(\.0) == [41])
    }

    @Test func diskBudgetRefusesAppendsUntilTruncationFreesSpace() async throws {
        let dir = TemporaryDirectory()
        var config = configuration(dir.path)
        config.maxLogSizeBytes = 4_096
        let log = try Log.open(config)
        var refused: LogError?
        for index in 0..<1_000 {
            do {
                try await log.append(records(8, startingAt: index * 8, keys: 1_000_000))
            } catch let error as LogError {
                refused = error
                break
            }
        }
        guard case .full = refused else {
            Issue.record("expected .full, got \(String(describing: refused))")
            return
        }
        let durable = log.durableLSN
        try await log.rollSegment()
        try await log.truncate(through: durable)
        try await log.append(records(1))
        await log.close()
    }

    @Test func anAppendLargerThanOneFrameIsRefusedWhole() async throws {
        let dir = TemporaryDirectory()
        var config = configuration(dir.path)
        config.maxBatchRecords = 100
        let log = try Log.open(config)
        await #expect(throws: LogError.batchTooLarge(recordCount: 101, maxRecordCount: 100)) {
            try await log.append(records(101))
        }
        #expect(try await log.append(records(100)) == 100)
        await log.close()
    }
}

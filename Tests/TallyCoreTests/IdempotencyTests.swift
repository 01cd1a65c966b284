import Foundation
import Synchronization
import Testing
import TallyCore
import TallyLog

@Suite struct RequestWindowTests {
    let tag = RequestTag(id: "order-17", digest: 42)!

    @Test func aRetryIsAnsweredAsTheFirstAndOtherIncrementsConflict() {
        let window = RequestWindow()
        #expect(window.admit(tag) { _ in } == .fresh)
        window.finish(tag, with: .stored(firstLSN: 5, lastLSN: 9, replayed: false))
        #expect(window.admit(tag) { _ in } == .answered(.stored(firstLSN: 5, lastLSN: 9, replayed: true)))
        #expect(window.admit(RequestTag(id: "order-17", digest: 43)!) { _ in } == .answered(.conflict))
    }

    @Test func aRetryWhileTheFirstIsInFlightWaitsForItsOutcome() {
        let window = RequestWindow()
        let heard = Mutex<[IngestOutcome]>([])
        #expect(window.admit(tag) { _ in } == .fresh)
        #expect(window.admit(tag) { outcome in heard.withLock { $0.append(outcome) } } == .waiting)
        window.finish(tag, with: .stored(firstLSN: 1, lastLSN: 1, replayed: false))
        #expect(heard.withLock { $0 } == [.stored(firstLSN: 1, lastLSN: 1, replayed: true)])
    }

    @Test func aRefusedRequestIsForgottenSoThatItsRetryCanSucceed() {
        let window = RequestWindow()
        #expect(window.admit(tag) { _ in } == .fresh)
        window.finish(tag, with: .refused(.closed))
        #expect(window.admit(tag) { _ in } == .fresh)
    }

    @Test func theWindowIsBoundedInSizeAndTime() {
        let now = Mutex<Int64>(1_000_000)
        let window = RequestWindow(retention: .seconds(10), maxEntries: 3, clock: { now.withLock { $0 } })
        for index in 0..<10 {
            let tag = RequestTag(id: "r\(index)", digest: 1)!
            _ = window.admit(tag) { _ in }
            window.finish(tag, with: .stored(firstLSN: LSN(index + 1), lastLSN: LSN(index + 1), replayed: false))
        }
        #expect(window.count <= 3)
        #expect(window.admit(RequestTag(id: "r9", digest: 1)!) { _ in } == .answered(.stored(firstLSN: 10, lastLSN: 10, replayed: true)))
        now.withLock { $0 += 11_000 }
        #expect(window.admit(RequestTag(id: "r9", digest: 1)!) { _ in } == .fresh, "past the retention a retry counts again")
    }
}

/// A tagged request is counted once across checkpoints, restarts and nodes sharing a sink.
@Suite struct RequestCountingTests {
    /// Records taken now: request rows are pruned by their arrival, after the retention.
    private func records(_ values: [Int64]) -> [LogRecord] {
        let now = RequestWindow.nowMillis()
        return values.map { LogRecord(key: LogKey(high: 3, low: UInt64($0)), value: $0, arrivalMillis: now) }
    }

    @Test func aRetryAppendedAgainInALaterCheckpointIsNotCountedTwice() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink)
        let first = records([1, 2, 3])
        let tag = RequestTag(id: "bulk-1", digest: RequestDigest.of(first))!
        try await node.log.append(first, tag: tag)
        try await node.checkpointer.checkpoint()
        try await node.log.append(first, tag: tag)  // a retry that no window caught (another node, an evicted id)
        try await node.log.append(records([10]))
        try await node.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(first + records([10])))
        #expect(node.checkpointer.status.requestsDeduplicated == 1)
        #expect(sink.state.withLock { $0.requests["bulk-1"]?.firstLSN } == 1)
        await node.log.close()
    }

    @Test func aRequestTwiceInOneIntervalAndAfterARestartCountsOnce() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let batch = records([4, 5])
        let tag = RequestTag(id: "twice", digest: RequestDigest.of(batch))!
        do {
            let node = try Node(directory: dir.path, sink: sink)
            try await node.log.append(batch, tag: tag)
            try await node.log.append(batch, tag: tag)
            await node.log.close()  // crash before any checkpoint: the replay sees both
        }
        let restarted = try Node(directory: dir.path, sink: sink)
        try await restarted.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(batch))
        await restarted.log.close()
    }

    @Test func severalRequestsInOneFrameReplayAsTheyWereTaken() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        var all: [LogRecord] = []
        do {
            var config = LogConfiguration(directory: dir.path, nodeID: LogKey(testNode))
            // The first frame's fdatasync waits until the three tagged appends are queued
            // (the completion API queues before it returns), so they share the next frame.
            let queued = DispatchSemaphore(value: 0)
            let syncs = Atomic(0)
            config.faults = LogFaults(sync: {
                if syncs.add(1, ordering: .relaxed).newValue == 1 { queued.wait() }
                return nil
            })
            let log = try Log.open(config)
            let batches: [[LogRecord]] = (0..<4).map { (index: Int) -> [LogRecord] in
                let first = Int64(index * 10 + 1)
                return records([first, first + 1])
            }
            all = batches.flatMap { $0 }
            let outcomes = Mutex<[Result<LSN, LogError>]>([])
            log.append(Append(records: batches[0])) { result in outcomes.withLock { $0.append(result) } }
            for _ in 0..<5_000 where syncs.load(ordering: .relaxed) == 0 { usleep(1_000) }
            #expect(syncs.load(ordering: .relaxed) == 1, "the writer is inside the first fdatasync")
            for (index, batch) in batches.enumerated().dropFirst() {
                log.append(Append(records: batch, tag: RequestTag(id: "frame-\(index)", digest: 1))) { result in
                    outcomes.withLock { $0.append(result) }
                }
            }
            queued.signal()
            for _ in 0..<5_000 where outcomes.withLock({ $0.count }) < 4 { try await Task.sleep(for: .milliseconds(1)) }
            #expect(outcomes.withLock { $0 }.allSatisfy { if case .success = $0 { true } else { false } })
            await log.close()
            let frames = try SegmentContents.segmentPaths(in: dir.path).map { try SegmentContents.read(path: $0).scan.frames.count }
            #expect(frames.reduce(0, +) == 2, "the three tagged appends shared one frame")
        }
        let restarted = try Node(directory: dir.path, sink: sink)
        try await restarted.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(all))
        #expect(Set(sink.state.withLock { $0.requests.keys }) == ["frame-1", "frame-2", "frame-3"])
        await restarted.log.close()
    }

    @Test func twoNodesWithTheSameRequestCountItOnce() async throws {
        let sink = MemorySink()
        let batch = records([7, 8, 9])
        let tag = RequestTag(id: "shared", digest: RequestDigest.of(batch))!
        let a = TemporaryDirectory()
        let b = TemporaryDirectory()
        let nodeA = try Node(directory: a.path, sink: sink, node: UUID())
        let nodeB = try Node(directory: b.path, sink: sink, node: UUID())
        try await nodeA.log.append(batch, tag: tag)
        try await nodeB.log.append(batch, tag: tag)
        try await nodeB.log.append(records([100]))
        try await nodeA.checkpointer.checkpoint()
        try await nodeB.checkpointer.checkpoint()
        #expect(sink.totals == expectedTotals(batch + records([100])))
        await nodeA.log.close()
        await nodeB.log.close()
    }

    @Test func ingestAnswersARetryWithTheFirstLSNsAndNeverAppendsItAgain() async throws {
        let dir = TemporaryDirectory()
        let sink = MemorySink()
        let node = try Node(directory: dir.path, sink: sink)
        let ingest = Ingest(log: node.log, window: RequestWindow(), lookup: nil)
        let batch = records([1, 2])
        let tag = RequestTag(id: "client-batch-9", digest: RequestDigest.of(batch))!
        #expect(await ingest.submit(batch, tag: tag) == .stored(firstLSN: 1, lastLSN: 2, replayed: false))
        #expect(await ingest.submit(batch, tag: tag) == .stored(firstLSN: 1, lastLSN: 2, replayed: true))
        let other = RequestTag(id: "client-batch-9", digest: RequestDigest.of(records([3])))!
        #expect(await ingest.submit(records([3]), tag: other) == .conflict)
        #expect(node.log.durableLSN == 2, "neither the retry nor the conflict was appended")
        await node.log.close()
    }

    @Test func ingestLooksUpIdsThisNodeDoesNotKnow() async throws {
        struct Lookup: RequestLookup {
            let stored: StoredRequest
            func storedRequest(id: String) async throws -> StoredRequest? { id == "elsewhere" ? stored : nil }
        }
        let dir = TemporaryDirectory()
        let node = try Node(directory: dir.path, sink: MemorySink())
        let batch = records([5])
        let digest = RequestDigest.of(batch)
        let ingest = Ingest(log: node.log, window: RequestWindow(),
                            lookup: Lookup(stored: StoredRequest(node: UUID(), firstLSN: 40, count: 1, digest: digest)))
        #expect(await ingest.submit(batch, tag: RequestTag(id: "elsewhere", digest: digest)!)
            == .stored(firstLSN: 40, lastLSN: 40, replayed: true))
        #expect(await ingest.submit(records([6]), tag: RequestTag(id: "elsewhere", digest: digest &+ 1)!) == .conflict)
        #expect(await ingest.submit(batch, tag: RequestTag(id: "new", digest: digest)!) == .stored(firstLSN: 1, lastLSN: 1, replayed: false))
        await node.log.close()
    }
}

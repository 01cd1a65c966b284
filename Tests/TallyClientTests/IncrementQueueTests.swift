import Foundation
import Testing
@testable import TallyClient

/// The queue's rules, driven without tasks or sockets.
struct IncrementQueueTests {
    let a = UUID()
    let b = UUID()

    func queue(capacity: Int = 10, batch: Int = 3, whenFull: TallyClientConfiguration.WhenFull = .dropNewest) -> IncrementQueue {
        IncrementQueue(capacityLines: capacity, maxBatchLines: batch, whenFull: whenFull, clientID: "tc-test")
    }

    @Test func hotKeysMergeIntoOneLine() {
        var queue = queue()
        var wakeups = IncrementQueue.Wakeups()
        for _ in 0..<1_000 { #expect(queue.enqueue(key: a, value: 2, wakeups: &wakeups) == .queued) }
        #expect(queue.heldLines == 1 && queue.statistics.queued == 1_000)
        queue.seal(wakeups: &wakeups)
        guard let sealed = queue.takeReady() else { Issue.record("no batch"); return }
        #expect(sealed.lines == [IncrementLine(key: a, value: 2_000)] && sealed.calls == 1_000 && sealed.id == "tc-test-1")
    }

    @Test func aLineThatWouldOverflowStartsTheNextBatch() {
        var queue = queue()
        var wakeups = IncrementQueue.Wakeups()
        _ = queue.enqueue(key: a, value: .max, wakeups: &wakeups)
        _ = queue.enqueue(key: a, value: .max, wakeups: &wakeups)
        guard let first = queue.takeReady() else { Issue.record("no batch"); return }
        #expect(first.lines == [IncrementLine(key: a, value: .max)])
        queue.seal(wakeups: &wakeups)
        guard let second = queue.takeReady() else { Issue.record("no batch"); return }
        #expect(second.lines == [IncrementLine(key: a, value: .max)] && second.id != first.id)
    }

    @Test func batchesAreSealedByCount() {
        var queue = queue(batch: 3)
        var wakeups = IncrementQueue.Wakeups()
        for _ in 0..<7 { _ = queue.enqueue(key: UUID(), value: 1, wakeups: &wakeups) }
        #expect(queue.sealedBatches == 2 && queue.open.count == 1)
    }

    @Test func aFullQueueDropsNewLinesButStillMergesWaitingKeys() {
        var queue = queue(capacity: 2, batch: 10)
        var wakeups = IncrementQueue.Wakeups()
        #expect(queue.enqueue(key: a, value: 1, wakeups: &wakeups) == .queued)
        #expect(queue.enqueue(key: b, value: 1, wakeups: &wakeups) == .queued)
        #expect(queue.enqueue(key: UUID(), value: 1, wakeups: &wakeups) == .dropped)
        #expect(queue.enqueue(key: a, value: 5, wakeups: &wakeups) == .queued, "merging takes no room")
        #expect(queue.statistics.dropped == 1 && queue.heldLines == 2)
        #expect(queue.enqueue(key: a, value: 0, wakeups: &wakeups) == .invalid)
    }

    @Test func linesInFlightStillCountUntilTheirBatchCompletes() {
        var queue = queue(capacity: 2, batch: 2)
        var wakeups = IncrementQueue.Wakeups()
        _ = queue.enqueue(key: a, value: 1, wakeups: &wakeups)
        _ = queue.enqueue(key: b, value: 1, wakeups: &wakeups)
        guard let batch = queue.takeReady() else { Issue.record("no batch"); return }
        #expect(queue.enqueue(key: UUID(), value: 1, wakeups: &wakeups) == .dropped, "in flight: still held")
        queue.complete(batch, .delivered, wakeups: &wakeups)
        #expect(queue.statistics.sent == 2 && queue.statistics.queued == 0)
        #expect(queue.enqueue(key: UUID(), value: 1, wakeups: &wakeups) == .queued)
    }

    @Test func underWaitAFullQueueParksCallers() {
        var queue = queue(capacity: 1, batch: 1, whenFull: .wait)
        var wakeups = IncrementQueue.Wakeups()
        _ = queue.enqueue(key: a, value: 1, wakeups: &wakeups)
        #expect(queue.enqueue(key: b, value: 1, wakeups: &wakeups) == .mustWait)
        #expect(queue.statistics.dropped == 0)
    }

    @Test func stopReportsEverythingNotHandedOut() {
        var queue = queue(capacity: 10, batch: 2)
        var wakeups = IncrementQueue.Wakeups()
        for _ in 0..<5 { _ = queue.enqueue(key: UUID(), value: 3, wakeups: &wakeups) }
        queue.drain(wakeups: &wakeups)
        #expect(queue.enqueue(key: a, value: 1, wakeups: &wakeups) == .closed)
        queue.stop(wakeups: &wakeups)
        #expect(queue.undelivered.map(\.calls).reduce(0, +) == 5 && queue.statistics.undelivered == 5)
        #expect(queue.statistics.queued == 0 && queue.heldLines == 0)
    }
}


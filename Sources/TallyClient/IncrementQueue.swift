#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The client's queue as a plain value: every rule about admitting, merging, sealing and
/// handing out batches lives here, and each mutation returns the continuations to resume
/// (``Wakeups``), which the client resumes after leaving the lock. Tests drive it directly.
///
/// Lines, not calls, are what the queue bounds: the open batch holds one line per key (an
/// increment to a waiting key adds to its line, so hot keys cost no room and the daemon gets
/// one line per key per batch), sealed batches wait in order, and lines in flight still count
/// until their batch is delivered or given up. So memory is bounded by ``capacityLines``
/// whatever the daemon does.
struct IncrementQueue {
    enum Phase: Equatable {
        /// Taking increments and sending batches.
        case running
        /// Graceful shutdown: no new increments; everything queued is sealed and sent.
        case draining
        /// Past the shutdown bound (or cancelled): nothing more is sent.
        case stopped
    }

    /// What a call to `increment` comes to before any waiting.
    enum Admission: Equatable {
        case queued
        case dropped
        case invalid
        case closed
        /// Full under `.wait`: the caller parks until ``complete(_:_:)`` makes room.
        case mustWait
    }

    struct OpenLine {
        var value: Int64
        var calls: Int
    }

    struct Waiter {
        let id: UInt64
        let key: UUID
        let value: Int64
        let continuation: CheckedContinuation<IncrementResult, Never>
    }

    /// Continuations to resume once the lock is released.
    struct Wakeups {
        var workers: [(CheckedContinuation<IncrementBatch?, Never>, IncrementBatch?)] = []
        var callers: [(CheckedContinuation<IncrementResult, Never>, IncrementResult)] = []
        var ticker: (CheckedContinuation<ContinuousClock.Instant?, Never>, ContinuousClock.Instant?)?

        var isEmpty: Bool { workers.isEmpty && callers.isEmpty && ticker == nil }

        func resume() {
            for (continuation, batch) in workers { continuation.resume(returning: batch) }
            for (continuation, result) in callers { continuation.resume(returning: result) }
            if let (continuation, instant) = ticker { continuation.resume(returning: instant) }
        }
    }

    /// How a batch handed to a worker ended.
    enum Completion: Equatable {
        case delivered
        /// Refused for good by the daemon.
        case failed
        /// Not confirmed before the client stopped: reported, never silently forgotten.
        case undelivered
    }

    let capacityLines: Int
    let maxBatchLines: Int
    let whenFull: TallyClientConfiguration.WhenFull
    /// The prefix of every batch id: unique per client instance.
    let clientID: String

    private(set) var phase = Phase.running
    private(set) var open: [UUID: OpenLine] = [:]
    private var openCalls = 0
    /// When the open batch got its first line (the flush timer's reference).
    private(set) var openSince: ContinuousClock.Instant?
    private var sealed: [IncrementBatch] = []
    private var sealedHead = 0
    private var sealedLines = 0
    private var inFlightLines = 0
    private var nextSequence: UInt64 = 1
    private var idleWorkers: [CheckedContinuation<IncrementBatch?, Never>] = []
    private var waiters: [Waiter] = []
    private var ticker: CheckedContinuation<ContinuousClock.Instant?, Never>?
    /// Batches that will never be sent: sealed ones left at stop, and in-flight ones given up.
    private(set) var undelivered: [IncrementBatch] = []
    private(set) var statistics = TallyClient.Statistics()

    init(capacityLines: Int, maxBatchLines: Int, whenFull: TallyClientConfiguration.WhenFull, clientID: String) {
        precondition(capacityLines >= 1 && maxBatchLines >= 1, "a queue holds at least one line")
        self.capacityLines = capacityLines
        self.maxBatchLines = maxBatchLines
        self.whenFull = whenFull
        self.clientID = clientID
    }

    /// Lines held now: open, sealed and in flight.
    var heldLines: Int { open.count + sealedLines + inFlightLines }
    var waitingCallers: Int { waiters.count }
    var sealedBatches: Int { sealed.count - sealedHead }

    // MARK: Increments

    /// Admits one increment: merged into its key's open line, or a new line when there is
    /// room; otherwise dropped or parked by the policy.
    mutating func enqueue(key: UUID, value: Int64, wakeups: inout Wakeups) -> Admission {
        guard value >= 1 else { return .invalid }
        guard phase == .running else {
            statistics.dropped += 1
            return .closed
        }
        if admit(key: key, value: value, wakeups: &wakeups) { return .queued }
        switch whenFull {
        case .dropNewest:
            statistics.dropped += 1
            return .dropped
        case .wait:
            return .mustWait
        }
    }

    /// Parks a caller of a full queue under `.wait`, unless room appeared (or the client
    /// closed, or the caller was cancelled) meanwhile: then the answer is immediate.
    mutating func park(_ waiter: Waiter, isCancelled: Bool, wakeups: inout Wakeups) -> IncrementResult? {
        guard phase == .running else {
            statistics.dropped += 1
            return .closed
        }
        if isCancelled {
            statistics.dropped += 1
            return .cancelled
        }
        if waiters.isEmpty, admit(key: waiter.key, value: waiter.value, wakeups: &wakeups) { return .queued }
        waiters.append(waiter)
        return nil
    }

    /// A parked caller whose task was cancelled: it leaves the queue, its increment dropped.
    mutating func cancelWaiter(id: UInt64) -> CheckedContinuation<IncrementResult, Never>? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        statistics.dropped += 1
        return waiters.remove(at: index).continuation
    }

    /// Merges or adds a line; seals the open batch at ``maxBatchLines``. False when full.
    private mutating func admit(key: UUID, value: Int64, wakeups: inout Wakeups) -> Bool {
        if let index = open.index(forKey: key) {
            let (sum, overflow) = open.values[index].value.addingReportingOverflow(value)
            if !overflow {
                open.values[index].value = sum
                open.values[index].calls += 1
                openCalls += 1
                statistics.queued += 1
                return true
            }
            // The line cannot hold more: this batch is done, the value starts a new one.
            seal(wakeups: &wakeups)
        }
        guard heldLines < capacityLines else { return false }
        if open.isEmpty {
            let now = ContinuousClock.now
            openSince = now
            if let waiting = ticker {
                ticker = nil
                wakeups.ticker = (waiting, now)
            }
        }
        open[key] = OpenLine(value: value, calls: 1)
        openCalls += 1
        statistics.queued += 1
        if open.count >= maxBatchLines { seal(wakeups: &wakeups) }
        return true
    }

    // MARK: Batches

    /// Seals the open batch: it gets its id and goes to an idle worker or joins the line.
    mutating func seal(wakeups: inout Wakeups) {
        guard !open.isEmpty else { return }
        var lines: [IncrementLine] = []
        lines.reserveCapacity(open.count)
        for (key, line) in open { lines.append(IncrementLine(key: key, value: line.value)) }
        let batch = IncrementBatch(id: "\(clientID)-\(nextSequence)", lines: lines, calls: openCalls)
        nextSequence += 1
        open.removeAll(keepingCapacity: true)
        openCalls = 0
        openSince = nil
        if let worker = idleWorkers.popLast() {
            inFlightLines += lines.count
            wakeups.workers.append((worker, batch))
        } else {
            sealed.append(batch)
            sealedLines += lines.count
        }
    }

    /// Seals the open batch if it is still the one opened at `since` (the flush timer).
    mutating func sealIfOpen(since: ContinuousClock.Instant, wakeups: inout Wakeups) {
        if openSince == since { seal(wakeups: &wakeups) }
    }

    enum Take {
        case batch(IncrementBatch)
        /// Nothing more will come: the worker ends.
        case finished
        case parked
    }

    /// The next batch for a worker; parks it when there is none yet.
    mutating func take(parking worker: CheckedContinuation<IncrementBatch?, Never>) -> Take {
        if let batch = takeReady() { return .batch(batch) }
        guard phase == .running else { return .finished }
        idleWorkers.append(worker)
        return .parked
    }

    /// A batch ready to send now, if any: the oldest sealed one, or while draining what is
    /// still open.
    mutating func takeReady() -> IncrementBatch? {
        if let batch = popSealed() { return batch }
        guard phase == .draining else { return nil }
        var wakeups = Wakeups()
        seal(wakeups: &wakeups)  // no worker is parked while draining, so it lands in `sealed`
        return popSealed()
    }

    private mutating func popSealed() -> IncrementBatch? {
        guard sealedHead < sealed.count else { return nil }
        let batch = sealed[sealedHead]
        sealedHead += 1
        if sealedHead > 64 && sealedHead * 2 > sealed.count {
            sealed.removeFirst(sealedHead)
            sealedHead = 0
        }
        sealedLines -= batch.lines.count
        inFlightLines += batch.lines.count
        return batch
    }

    /// A worker is done with `batch`: its lines leave the queue, and parked callers take
    /// the room in arrival order.
    mutating func complete(_ batch: IncrementBatch, _ completion: Completion, wakeups: inout Wakeups) {
        inFlightLines -= batch.lines.count
        statistics.queued -= batch.calls
        switch completion {
        case .delivered: statistics.sent += batch.calls
        case .failed: statistics.failed += batch.calls
        case .undelivered:
            statistics.undelivered += batch.calls
            undelivered.append(batch)
        }
        while phase == .running, let first = waiters.first {
            guard admit(key: first.key, value: first.value, wakeups: &wakeups) else { break }
            waiters.removeFirst()
            wakeups.callers.append((first.continuation, .queued))
        }
    }

    mutating func recordRetry() {
        statistics.retried += 1
    }

    // MARK: The flush timer

    /// The instant the open batch opened, or parks the timer until a first line arrives.
    /// nil: the queue no longer runs, the timer ends.
    mutating func openedAt(parking timer: CheckedContinuation<ContinuousClock.Instant?, Never>) -> ContinuousClock.Instant?? {
        guard phase == .running else { return .some(nil) }
        if let openSince { return .some(openSince) }
        ticker = timer
        return nil
    }

    // MARK: Shutdown

    /// Graceful shutdown: refuse new increments, seal what is open, release what waits.
    mutating func drain(wakeups: inout Wakeups) {
        guard phase == .running else { return }
        phase = .draining
        seal(wakeups: &wakeups)
        releaseWaiting(wakeups: &wakeups)
    }

    /// The bound has passed: what was never handed out is undelivered; workers end.
    mutating func stop(wakeups: inout Wakeups) {
        guard phase != .stopped else { return }
        if phase == .running { releaseWaiting(wakeups: &wakeups) }
        phase = .stopped
        seal(wakeups: &wakeups)
        while let batch = popSealed() {
            inFlightLines -= batch.lines.count
            statistics.queued -= batch.calls
            statistics.undelivered += batch.calls
            undelivered.append(batch)
        }
        for worker in idleWorkers { wakeups.workers.append((worker, nil)) }
        idleWorkers.removeAll()
    }

    private mutating func releaseWaiting(wakeups: inout Wakeups) {
        for waiter in waiters { wakeups.callers.append((waiter.continuation, .closed)) }
        statistics.dropped += waiters.count
        waiters.removeAll()
        for worker in idleWorkers {
            // Workers parked while running: hand them what was just sealed, or let them end.
            wakeups.workers.append((worker, popSealed()))
        }
        idleWorkers.removeAll()
        if let timer = ticker {
            ticker = nil
            wakeups.ticker = (timer, nil)
        }
    }
}

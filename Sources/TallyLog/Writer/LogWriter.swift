import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The single writer behind a `Log`: a dedicated thread that turns queued appends into
/// frames, writes each frame and fdatasyncs it, and only then resumes the appenders.
///
/// Group commit falls out of the queue: while one write+fdatasync is in flight, appends
/// pile up, and the next flush takes all of them (up to the batch bound) as one frame. The
/// thread is the only one that touches segment files for writing, so blocking I/O never
/// runs on Swift's cooperative pool or a NIO event loop, and frame order is LSN order.
final class LogWriter: @unchecked Sendable {
    typealias AppendContinuation = CheckedContinuation<LSN, any Error>

    /// How an appender hears of its append: a suspended task, or a callback for callers that
    /// must not suspend (an HTTP handler on an event loop).
    enum AppendCompletion {
        case resume(AppendContinuation)
        case call(@Sendable (Result<LSN, LogError>) -> Void)

        func complete(_ result: Result<LSN, LogError>) {
            switch self {
            case .resume(let continuation): continuation.resume(with: result.mapError { $0 })
            case .call(let callback): callback(result)
            }
        }
    }

    struct PendingAppend {
        var append: Append
        var completion: AppendCompletion
        var records: [LogRecord] { append.records }
    }

    enum Command {
        case roll(CheckedContinuation<LSN, any Error>)
        case truncate(through: LSN, CheckedContinuation<LogTruncation, any Error>)
        case release(continuingAfter: LSN, CheckedContinuation<LSN, any Error>)
    }

    let configuration: LogConfiguration
    private let lock: DirectoryLock

    // Guarded by `condition`: the hand-off between appenders and the writer thread.
    private let condition = NSCondition()
    private var pending: [PendingAppend] = []
    private var pendingRecords = 0
    private var commands: [Command] = []
    private var failure: LogError?
    /// Set while the disk is full: appends are refused with it until a probe finds space.
    private var diskFull: LogError?
    /// Why appends are held back by the log's owner (nil: they are taken).
    private var hold: String?
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var closing = false
    private var finished = false

    // Owned by the writer thread alone (and by `init`, before the thread starts).
    private var closedSegments: [SegmentEntry]
    /// Nil only while a log opened on an empty directory holds its appends: its first segment
    /// is created by `release`, at the LSN the owner names.
    private var active: ActiveSegment?
    private var nextLSN: LSN
    private var encoder = FrameEncoder()
    /// While the disk is full: the room a probe must find before appends are taken again.
    private var spaceWantedBytes = 0

    // Published by the writer thread for cheap reads from anywhere.
    private let durable: Atomic<UInt64>
    private let sizeBytes: Atomic<Int>
    private let segmentCount: Atomic<Int>
    /// The oldest segment's first LSN, 0 while there is no segment.
    private let oldestLSN: Atomic<UInt64>

    init(configuration: LogConfiguration, lock: DirectoryLock, closedSegments: [SegmentEntry],
         active: ActiveSegment?, nextLSN: LSN, hold: String?) {
        precondition(active != nil || (closedSegments.isEmpty && hold != nil),
                     "only a log that holds its appends may lack an active segment")
        self.configuration = configuration
        self.lock = lock
        self.closedSegments = closedSegments
        self.active = active
        self.nextLSN = nextLSN
        self.hold = hold
        durable = Atomic(nextLSN - 1)
        sizeBytes = Atomic(closedSegments.reduce(active?.entry.sizeBytes ?? 0) { $0 + $1.sizeBytes })
        segmentCount = Atomic(closedSegments.count + (active == nil ? 0 : 1))
        oldestLSN = Atomic(closedSegments.first?.firstLSN ?? active?.entry.firstLSN ?? 0)
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "tally-log-writer"
        thread.start()
    }

    // MARK: Called from any thread

    var durableLSN: LSN { durable.load(ordering: .acquiring) }
    var logSizeBytes: Int { sizeBytes.load(ordering: .relaxed) }
    var segmentsOnDisk: Int { segmentCount.load(ordering: .relaxed) }
    var firstLSNOnDisk: LSN? {
        let lsn = oldestLSN.load(ordering: .acquiring)
        return lsn == 0 ? nil : lsn
    }

    var stopReason: LogError? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    var diskFullReason: LogError? {
        condition.lock()
        defer { condition.unlock() }
        return diskFull
    }

    var holdReason: String? {
        condition.lock()
        defer { condition.unlock() }
        return hold
    }

    /// Appends fail with `.appendsHeld(reason)` from now on, until `release`. Appends already
    /// queued are still written: their appenders were told nothing yet, and will hear the truth.
    func holdAppends(reason: String) {
        condition.lock()
        hold = reason
        condition.unlock()
    }

    func append(_ append: Append) async throws -> LSN {
        try await withCheckedThrowingContinuation { (continuation: AppendContinuation) in
            enqueue(append, completion: .resume(continuation))
        }
    }

    /// Queues `append` for the next frame; `completion` runs once it is durable or
    /// refused — on the writer thread, or at once on the caller's thread when refused here.
    func enqueue(_ append: Append, completion: AppendCompletion) {
        let records = append.records
        guard !records.isEmpty else { return completion.complete(.success(durableLSN)) }
        guard records.count <= configuration.maxBatchRecords else {
            return completion.complete(.failure(
                .batchTooLarge(recordCount: records.count, maxRecordCount: configuration.maxBatchRecords)))
        }
        if let limit = configuration.maxLogSizeBytes, logSizeBytes > limit {
            return completion.complete(.failure(.full(logSizeBytes: logSizeBytes, maxLogSizeBytes: limit)))
        }
        condition.lock()
        if let refusal = failure ?? (closing ? .closed : nil) ?? diskFull ?? hold.map({ .appendsHeld(reason: $0) }) {
            condition.unlock()
            return completion.complete(.failure(refusal))
        }
        if pendingRecords + records.count > configuration.maxQueuedRecords {
            let queued = pendingRecords
            condition.unlock()
            return completion.complete(.failure(.overloaded(queuedRecords: queued)))
        }
        pending.append(PendingAppend(append: append, completion: completion))
        pendingRecords += records.count
        condition.signal()
        condition.unlock()
    }

    func roll() async throws -> LSN {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.roll(continuation))
        }
    }

    func truncate(through lsn: LSN) async throws -> LogTruncation {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.truncate(through: lsn, continuation))
        }
    }

    func release(continuingAfter lsn: LSN) async throws -> LSN {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.release(continuingAfter: lsn, continuation))
        }
    }

    /// Stops taking appends, flushes those already queued, then closes the files.
    func close() async {
        await withCheckedContinuation { continuation in
            condition.lock()
            if finished {
                condition.unlock()
                continuation.resume()
                return
            }
            closing = true
            closeWaiters.append(continuation)
            condition.signal()
            condition.unlock()
        }
    }

    private func enqueue(_ command: Command) {
        condition.lock()
        if let refusal = failure ?? (closing ? .closed : nil) {
            condition.unlock()
            command.fail(refusal)
            return
        }
        commands.append(command)
        condition.signal()
        condition.unlock()
    }

    // MARK: The writer thread

    private func run() {
        var batch: [PendingAppend] = []
        var batchRecords = 0
        var probeDue = false
        while true {
            condition.lock()
            while pending.isEmpty && commands.isEmpty && !closing {
                if diskFull == nil {
                    condition.wait()
                } else if !condition.wait(until: Date(timeIntervalSinceNow: Self.seconds(configuration.spaceProbeInterval))) {
                    probeDue = true
                    break
                }
            }
            let full = diskFull != nil
            // Take whole appends up to the batch bound; an append never splits across frames.
            batch.removeAll(keepingCapacity: true)
            batchRecords = 0
            var taken = 0
            while taken < pending.count,
                  batchRecords + pending[taken].records.count <= configuration.maxBatchRecords {
                batchRecords += pending[taken].records.count
                taken += 1
            }
            batch.append(contentsOf: pending[0..<taken])
            pending.removeFirst(taken)
            pendingRecords -= batchRecords
            let takenCommands = commands
            commands.removeAll()
            let finished = closing && pending.isEmpty
            condition.unlock()

            if !batch.isEmpty { flush(batch, recordCount: batchRecords) }
            for command in takenCommands { execute(command) }
            // Probe on schedule, and at once after a command (a checkpoint's truncation may
            // just have freed the space).
            if full && (probeDue || !takenCommands.isEmpty) { probeForSpace() }
            probeDue = false
            if finished {
                finish()
                return
            }
        }
    }

    private func flush(_ batch: [PendingAppend], recordCount: Int) {
        // Appends are refused while there is no active segment (`hold` is set until `release`
        // creates one), so a batch always has a segment to go to.
        precondition(active != nil, "an append reached the writer before the log had a segment")
        let firstLSN = nextLSN
        encoder.encode(batch.lazy.map(\.append), recordCount: recordCount, firstLSN: firstLSN)
        let frameSize = encoder.frameLength
        let clock = ContinuousClock()
        let started = clock.now
        do {
            if active!.frameCount > 0 && active!.entry.sizeBytes + frameSize > configuration.segmentSizeBytes
                || active!.formatVersion < SegmentHeader.currentVersion {
                try rollActiveSegment()
            }
            try writeFrame()
        } catch where error.isOutOfSpace {
            waitForSpace(because: error, neededBytes: frameSize, failing: batch)
            return
        } catch {
            stop(because: error, failing: batch)
            return
        }
        do {
            try sync()
        } catch {
            stop(because: error, failing: batch)
            return
        }
        active!.entry.sizeBytes += frameSize
        active!.frameCount += 1
        nextLSN = firstLSN + LSN(recordCount)
        sizeBytes.add(frameSize, ordering: .relaxed)
        durable.store(nextLSN - 1, ordering: .releasing)
        if let onDurable = configuration.onDurable {
            onDurable(DurableFrame(firstLSN: firstLSN, appends: batch.map(\.append), recordCount: recordCount,
                                   sizeBytes: frameSize, writeAndSyncDuration: clock.now - started))
        }

        var lastLSN = firstLSN - 1
        for append in batch {
            lastLSN += LSN(append.records.count)
            append.completion.complete(.success(lastLSN))
        }
        assert(lastLSN == nextLSN - 1)
    }

    private func writeFrame() throws(LogError) {
        let path = active!.entry.path
        let offset = active!.entry.sizeBytes
        let action = configuration.faults?.write(encoder.frameLength) ?? .proceed
        let fd = active!.fd
        let failure: LogError? = encoder.withFrameBytes { bytes in
            do throws(LogError) {
                switch action {
                case .proceed:
                    try SystemCalls.writeAll(fd, bytes, at: offset, path: path)
                case .fail(let code):
                    throw .io(operation: "write", path: path, errno: code)
                case .tear(let count, let code):
                    let prefix = UnsafeRawBufferPointer(rebasing: bytes[0..<min(count, bytes.count)])
                    try SystemCalls.writeAll(fd, prefix, at: offset, path: path)
                    throw .io(operation: "write", path: path, errno: code)
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    private func sync() throws(LogError) {
        try SystemCalls.dataSync(active!.fd, path: active!.entry.path)
        if let code = configuration.faults?.sync() {
            throw .io(operation: "fdatasync", path: active!.entry.path, errno: code)
        }
    }

    /// A write found no space, before any fdatasync of the frame. Unlike a failed fsync this
    /// loses nothing the kernel had taken, so the log need not stop: the partial frame is cut
    /// off (nothing of it may count after a restart), the batch and every queued append are
    /// refused with `.diskFull` (503 + Retry-After), and the writer probes for space every
    /// `spaceProbeInterval`, taking appends again when a probe as large as this frame fits.
    /// If the cut itself fails, the file's end is unknown and the log stops for good.
    private func waitForSpace(because error: LogError, neededBytes: Int, failing batch: [PendingAppend]) {
        if let active {
            do {
                try SystemCalls.truncate(active.fd, toSizeBytes: active.entry.sizeBytes, path: active.entry.path)
            } catch {
                return stop(because: error, failing: batch)
            }
        }
        spaceWantedBytes = max(neededBytes, configuration.spaceProbeSizeBytes)
        let reason = LogError.diskFull(reason: error.description)
        condition.lock()
        let changed = diskFull == nil
        diskFull = reason
        let queued = pending
        pending.removeAll()
        pendingRecords = 0
        condition.unlock()
        for append in batch { append.completion.complete(.failure(reason)) }
        for append in queued { append.completion.complete(.failure(reason)) }
        if changed { configuration.onStateChange?(.diskFull(reason)) }
    }

    /// While the disk is full: takes appends again once `spaceWantedBytes` fit.
    private func probeForSpace() {
        let probe = SpaceProbe(directory: configuration.directory)
        do {
            guard try probe.hasRoom(forBytes: spaceWantedBytes, fault: configuration.faults?.probe()) else { return }
        } catch {
            return stop(because: error, failing: [])
        }
        condition.lock()
        diskFull = nil
        condition.unlock()
        configuration.onStateChange?(.spaceReturned)
    }

    /// A write or fdatasync failed. After a failed fsync the kernel may have dropped the
    /// dirty pages and will not report it again (PostgreSQL's "fsyncgate"), so retrying could
    /// acknowledge data that is not on disk. Instead the log stops for good: the batch and
    /// every queued append fail, and later appends are refused. The partial frame is cut off
    /// as a courtesy so that a reopen does not count what no client was told was stored; if
    /// the cut fails too, the frame is a torn tail or, if whole, an unacknowledged record.
    private func stop(because error: LogError, failing batch: [PendingAppend]) {
        if let active {
            try? SystemCalls.truncate(active.fd, toSizeBytes: active.entry.sizeBytes, path: active.entry.path)
            try? SystemCalls.dataSync(active.fd, path: active.entry.path)
        }
        let reason = LogError.stopped(reason: error.description)
        condition.lock()
        let changed = failure == nil
        failure = reason
        diskFull = nil
        let queued = pending
        pending.removeAll()
        pendingRecords = 0
        let queuedCommands = commands
        commands.removeAll()
        condition.unlock()
        for append in batch { append.completion.complete(.failure(reason)) }
        for append in queued { append.completion.complete(.failure(reason)) }
        for command in queuedCommands { command.fail(reason) }
        if changed { configuration.onStateChange?(.stopped(reason)) }
    }

    private func execute(_ command: Command) {
        if let failure = stopReason {
            command.fail(failure)
            return
        }
        switch command {
        case .roll(let continuation):
            do {
                try rollActiveSegment()
                continuation.resume(returning: active?.entry.firstLSN ?? nextLSN)
            } catch where error.isOutOfSpace {
                // `ActiveSegment.create` removed its temporary file; the active segment is intact.
                waitForSpace(because: error, neededBytes: SegmentHeader.sizeBytes, failing: [])
                continuation.resume(throwing: LogError.diskFull(reason: error.description))
            } catch {
                stop(because: error, failing: [])
                continuation.resume(throwing: LogError.stopped(reason: error.description))
            }
        case .truncate(let lsn, let continuation):
            continuation.resume(returning: deleteSegments(through: lsn))
        case .release(let lsn, let continuation):
            do {
                continuation.resume(returning: try release(continuingAfter: lsn))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Takes appends again, continuing after `lsn`. A log without segments starts its first
    /// one right after `lsn` (a node whose disk was replaced continues after its checkpoint);
    /// a log that has segments must already reach `lsn`, or the LSNs it would hand out next
    /// would repeat ones that already mean something else, and nothing is released.
    private func release(continuingAfter lsn: LSN) throws(LogError) -> LSN {
        if active == nil {
            let first = max(lsn + 1, configuration.firstLSN)
            active = try ActiveSegment.create(directory: configuration.directory, nodeID: configuration.nodeID,
                                              firstLSN: first)
            nextLSN = first
            durable.store(first - 1, ordering: .releasing)
            sizeBytes.add(active!.entry.sizeBytes, ordering: .relaxed)
            segmentCount.store(closedSegments.count + 1, ordering: .relaxed)
            oldestLSN.store(first, ordering: .releasing)
        } else if nextLSN <= lsn {
            throw .endsBefore(lsn: lsn, logEnd: nextLSN - 1)
        }
        condition.lock()
        hold = nil
        condition.unlock()
        return nextLSN
    }

    /// Starts a new segment at `nextLSN`. An active segment without frames is kept as it is.
    private func rollActiveSegment() throws(LogError) {
        guard let current = active, current.frameCount > 0 else { return }
        let next = try ActiveSegment.create(
            directory: configuration.directory, nodeID: configuration.nodeID, firstLSN: nextLSN)
        SystemCalls.close(current.fd)
        closedSegments.append(current.entry)
        active = next
        sizeBytes.add(next.entry.sizeBytes, ordering: .relaxed)
        segmentCount.store(closedSegments.count + 1, ordering: .relaxed)
    }

    private func deleteSegments(through lsn: LSN) -> LogTruncation {
        guard let active else { return LogTruncation() }  // no segment at all yet
        let result = LogMaintenance.deleteOldest(
            closedSegments, followedBy: active.entry.firstLSN, through: lsn, directory: configuration.directory)
        closedSegments.removeFirst(result.deletedSegments.count)
        oldestLSN.store(closedSegments.first?.firstLSN ?? active.entry.firstLSN, ordering: .releasing)
        sizeBytes.subtract(result.deletedSizeBytes, ordering: .relaxed)
        segmentCount.store(closedSegments.count + 1, ordering: .relaxed)
        return result
    }

    private func finish() {
        if let active {
            if stopReason == nil { try? SystemCalls.dataSync(active.fd, path: active.entry.path) }
            SystemCalls.close(active.fd)
        }
        lock.release()
        condition.lock()
        failure = failure ?? .closed
        finished = true
        let waiters = closeWaiters
        closeWaiters.removeAll()
        condition.unlock()
        for waiter in waiters { waiter.resume() }
    }
}

extension LogWriter {
    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

extension LogWriter.Command {
    func fail(_ error: LogError) {
        switch self {
        case .roll(let continuation): continuation.resume(throwing: error)
        case .truncate(_, let continuation): continuation.resume(throwing: error)
        case .release(_, let continuation): continuation.resume(throwing: error)
        }
    }
}

/// What one truncation pass deleted.
public struct LogTruncation: Sendable, Equatable {
    public var deletedSegments: [String] = []
    public var deletedSizeBytes = 0
    /// The highest LSN no longer on disk, when anything was deleted.
    public var deletedThroughLSN: LSN?
    /// Why the pass stopped early, if a delete failed (it is retried on the next call).
    public var failure: String?
}

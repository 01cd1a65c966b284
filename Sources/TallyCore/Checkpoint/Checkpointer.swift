import Foundation
import Logging
import Synchronization
import TallyLog

/// Moves the compactor's sums into the sink, every interval and before the freshness
/// deadline, and deletes the log segments that PostgreSQL has absorbed.
///
/// One pass: roll the log segment → catch the compactor up to the durable LSN → take its
/// table → one sink transaction (upsert in key order + compare-and-set of the LSN) → read the
/// LSN back → delete segments at or below it. If the transaction surely rolled back, the
/// taken sums go back into the compactor. If its outcome is unknown (or the LSN is not what
/// we expected), nothing is re-added: the next pass reads the stored LSN and rebuilds the
/// pending sums from the log, which still holds every record after any committed LSN.
public final class Checkpointer: Sendable {
    /// What this node knows of its checkpoint row. Every LSN the row holds must be one this
    /// node put there (`NodePosition`), so the checkpointer never adopts an LSN it cannot
    /// account for: it refuses, for good, and says why.
    private enum Position: Sendable {
        /// Not read yet: the first pass reads and judges it.
        case unverified
        /// The stored LSN as this node last saw or set it.
        case known(LSN)
        /// A COMMIT moving `known` to `target` may or may not have happened; only those two
        /// LSNs are ours when the row is read back.
        case inDoubt(known: LSN, target: LSN)
        /// The log and the row do not fit: no more passes, appends held, until an operator acts.
        case refused(NodePositionError)
    }

    private struct State {
        var position = Position.unverified
        var status = CheckpointerStatus()
        /// Learns pass durations against their rows, for the deadline (how early to start).
        var predictor: PassPredictor
        /// The last `keepCheckpoints` confirmed LSNs, oldest first: segments are deleted only
        /// through the oldest, so a PostgreSQL that loses its last commits can be replayed.
        var recentConfirmed: [LSN] = []
    }

    private let log: Log
    private let compactor: Compactor
    private let sink: any CheckpointSink
    private let fence: CheckpointFence?
    public let configuration: CheckpointerConfiguration
    private let logger: Logger
    private let io: BlockingExecutor
    private let state: Mutex<State>
    /// The log took appends before the first read of the stored LSN (its position was
    /// proven locally): what it took meanwhile is reported if the read disagrees after all.
    private let tookAppendsBeforeVerifying: Bool
    /// Serialises passes: the scheduled loop and `finalCheckpoint` never overlap.
    private let passLock = AsyncLock()

    /// - Parameter fence: the data directory's checkpoint fence; nil for a log without one
    ///   (tests, tools), which then skips the checks that need it.
    public init(log: Log, compactor: Compactor, sink: any CheckpointSink, fence: CheckpointFence? = nil,
                configuration: CheckpointerConfiguration, logger: Logger) {
        self.log = log
        self.compactor = compactor
        self.sink = sink
        self.fence = fence
        self.configuration = configuration
        self.logger = logger
        self.io = BlockingExecutor(name: "tally-checkpoint-io")
        state = Mutex(State(predictor: PassPredictor(baseMargin: configuration.deadlineMargin)))
        tookAppendsBeforeVerifying = log.holdReason == nil
    }

    deinit {
        io.shutdown()
    }

    public var status: CheckpointerStatus {
        var status = state.withLock { $0.status }
        let pending = compactor.pending
        status.pendingKeys = pending.keys
        status.pendingRecords = pending.records
        status.oldestPendingAt = compactor.oldestPendingAt
        status.maxPendingKeys = compactor.maxPendingKeys
        status.overBudget = compactor.isOverBudget
        return status
    }

    /// Runs checkpoints until the task is cancelled.
    public func run() async {
        let clock = ContinuousClock()
        var nextRegular = clock.now + configuration.interval
        var backoff = configuration.initialBackoff
        while !Task.isCancelled {
            if isRefused {
                // Nothing will fit until an operator acts; the refusal was logged once.
                try? await Task.sleep(for: configuration.interval)
                continue
            }
            let now = clock.now
            if isDue(now: now, nextRegular: nextRegular) {
                do {
                    try await checkpoint()
                    backoff = configuration.initialBackoff
                    // From the pass's start, which is when it took the table: what arrived
                    // since then is the next pass's, and waits `interval` at most, not
                    // `interval` plus this pass's duration.
                    nextRegular = now + configuration.interval
                } catch {
                    // Full jitter keeps many nodes from retrying in lockstep after an outage.
                    let jittered = Duration.milliseconds(Int64.random(in: 0...max(1, backoff.milliseconds)))
                    try? await Task.sleep(for: max(jittered, configuration.tick))
                    backoff = min(backoff * 2, configuration.maxBackoff)
                    continue
                }
            }
            try? await Task.sleep(for: configuration.tick)
        }
    }

    private var isRefused: Bool {
        state.withLock { if case .refused = $0.position { true } else { false } }
    }

    private func isDue(now: ContinuousClock.Instant, nextRegular: ContinuousClock.Instant) -> Bool {
        let (known, predictor) = state.withLock { state -> (Bool, PassPredictor) in
            let known = if case .known = state.position { true } else { false }
            return (known, state.predictor)
        }
        if !known || now >= nextRegular { return true }
        guard configuration.keepsFreshnessBound, let oldest = compactor.oldestPendingAt else { return false }
        // Start early enough that the COMMIT lands within the bound of the oldest increment,
        // predicting the pass from the rows it will carry: the more pending keys, the earlier.
        let latestStart = predictor.latestStart(oldest: oldest, rows: compactor.pending.keys,
                                                bound: CheckpointerConfiguration.freshnessBound)
        return now >= latestStart - configuration.tick
    }

    /// One checkpoint pass, now. Throws when the sink failed or the node's position is
    /// refused; the state stays consistent.
    public func checkpoint() async throws {
        try await passLock.withLock { try await self.pass() }
    }

    /// The last checkpoint before exit: the caller has closed the log, so this pass makes
    /// PostgreSQL hold every acknowledged increment. Retries until `timeout`, and stops
    /// waiting at `timeout` even for a pass blocked inside PostgreSQL (a lock, a hung
    /// server): the log keeps everything and the next start applies it. Gives up at once
    /// when the node's position is refused.
    public func finalCheckpoint(timeout: Duration = .seconds(5)) async throws {
        let deadline = ContinuousClock.now + timeout
        var backoff = configuration.initialBackoff
        while true {
            do {
                try await withDeadline(deadline) { try await self.checkpoint() }
                if compactor.pending.records == 0 { return }
            } catch {
                if error is NodePositionError || error is DeadlineError || ContinuousClock.now + backoff >= deadline {
                    throw error
                }
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    private func pass() async throws {
        let started = ContinuousClock.now
        do {
            // Roll so that everything up to here sits in closed, deletable segments. A stopped
            // or closed log cannot roll, but what it holds must still be checkpointed.
            var checkpointLSN = try await verifiedPosition()
            _ = try? await log.rollSegment()
            let durable = log.durableLSN
            // Over the compactor's memory bound the log is applied in LSN slices, each its own
            // checkpoint (and segment deletion), until the table reaches `durable`.
            for slice in 1...configuration.maxSlicesPerPass {
                let sliceStarted = slice == 1 ? started : ContinuousClock.now
                _ = try await io.run { [compactor, logger] in
                    // A start-up on a large log reads for a while: say how far it got.
                    let progress = ProgressReport(from: compactor.nextLSN ?? 1, to: durable, intervalSeconds: 5) { point in
                        logger.notice("reading the log", metadata: ["progress": "\(point.description)"])
                    }
                    return try compactor.catchUp(through: durable, onProgress: progress.reached)
                }
                try await apply(after: checkpointLSN, startedAt: sliceStarted)
                guard compactor.isBehind, slice < configuration.maxSlicesPerPass, !Task.isCancelled else { break }
                checkpointLSN = try await verifiedPosition()
                if slice == 1 {
                    logger.notice("over the pending-key budget: applying the log in slices",
                                  metadata: ["max_pending_keys": "\(compactor.maxPendingKeys)", "durable_lsn": "\(durable)"])
                }
            }
            recordSuccess(duration: ContinuousClock.now - started)
            await pruneExpiredRequests()
        } catch {
            recordFailure(error)
            throw error
        }
    }

    /// The stored checkpoint LSN this pass builds on: as known, or read back and judged
    /// (at start, and after a COMMIT whose outcome is unknown).
    private func verifiedPosition() async throws -> LSN {
        let position = state.withLock { $0.position }
        switch position {
        case .known(let lsn):
            return lsn
        case .refused(let error):
            throw error
        case .unverified:
            let stored = try await sink.checkpointLSN(node: configuration.node)
            let opened = log.openReport.nextLSN
            let durable = log.durableLSN
            let taken: ClosedRange<LSN>? = tookAppendsBeforeVerifying && durable >= opened ? opened...durable : nil
            return try await adopt(NodePosition.atStart(stored: stored, log: logExtent, fence: fence?.marks,
                                                        takenSinceStart: taken))
        case .inDoubt(let known, let target):
            let stored = try await sink.checkpointLSN(node: configuration.node)
            return try await adopt(NodePosition.later(stored: stored, known: known, inDoubtTarget: target, log: logExtent))
        }
    }

    private var logExtent: NodePosition.LogExtent {
        NodePosition.LogExtent(firstLSN: log.firstLSNOnDisk, endLSN: log.durableLSN)
    }

    /// Acts on a judgement of the stored LSN: refuses for good, or (re)builds the pending
    /// sums from the log after it, lets a log that waited for this take appends, and
    /// remembers the LSN as confirmed.
    private func adopt(_ verdict: NodePosition.Verdict) async throws -> LSN {
        let stored: LSN
        switch verdict {
        case .refuse(let error):
            refuse(error)
            throw error
        case .continueAfter(let lsn, let regressedFrom):
            stored = lsn
            if let regressedFrom { reportRegression(from: regressedFrom, to: lsn) }
        }
        compactor.reset(after: stored)
        if log.holdReason == Self.waitingReason {
            do {
                try await log.releaseAppends(continuingAfter: stored)
            } catch LogError.endsBefore(_, let logEnd) {
                let error = NodePositionError.aheadOfLog(storedLSN: stored, logEnd: logEnd, takenSinceStart: nil)
                refuse(error)
                throw error
            }
        }
        try await confirm(stored)
        state.withLock { state in
            state.position = .known(stored)
            state.status.checkpointLSN = stored
        }
        logger.info("checkpoint position read", metadata: ["lsn": "\(stored)", "durable_lsn": "\(log.durableLSN)"])
        return stored
    }

    /// The reason a node that cannot yet prove where its LSNs continue holds its appends.
    public static let waitingReason =
        "waiting for PostgreSQL: this node's log cannot prove it is ahead of its stored checkpoint, "
            + "so its LSNs must continue after that checkpoint, which is not read yet"

    private func refuse(_ error: NodePositionError) {
        let first = state.withLock { state -> Bool in
            if case .refused = state.position { return false }
            state.position = .refused(error)
            state.status.positionError = error
            return true
        }
        log.holdAppends(reason: error.description)
        if first {
            logger.critical("this node refuses writes and stops counting", metadata: ["reason": "\(error)"])
        }
    }

    private func reportRegression(from: LSN, to: LSN) {
        state.withLock { state in
            state.status.regressions += 1
            state.status.lastRegression = CheckpointerStatus.Regression(fromLSN: from, toLSN: to)
            state.recentConfirmed.removeAll()
        }
        logger.error("PostgreSQL's checkpoint for this node went back: it lost commits (a restore, or a standby promoted without them); replaying the log after the older LSN", metadata: [
                         "from_lsn": "\(from)", "to_lsn": "\(to)"])
    }

    /// Records `lsn` as read back: in the fence, and among the recent checkpoints whose
    /// segments are kept.
    private func confirm(_ lsn: LSN) async throws {
        if let fence, fence.marks?.confirmed != lsn {
            do {
                try await io.run { try fence.recordConfirmed(lsn) }
            } catch {
                logger.warning("could not update the checkpoint fence", metadata: ["error": "\(error)"])
            }
        }
        state.withLock { state in
            if state.recentConfirmed.last != lsn { state.recentConfirmed.append(lsn) }
            if state.recentConfirmed.count > configuration.keepCheckpoints { state.recentConfirmed.removeFirst() }
        }
    }

    private func apply(after checkpointLSN: LSN, startedAt: ContinuousClock.Instant) async throws {
        let pendingSince = compactor.oldestPendingAt
        guard let table = compactor.take() else { return }
        precondition(table.baseLSN == checkpointLSN, "compactor base \(table.baseLSN) is not the checkpoint \(checkpointLSN)")
        var expected = checkpointLSN
        if !table.isEmpty {
            let target = table.lastLSN
            do {
                // Before anything can commit: a stored LSN above `attempted` is never ours.
                let taken = ContinuousClock.now
                if let fence { try await io.run { try fence.recordAttempt(target) } }
                let plan = try await CheckpointPlan.make(table: table, node: configuration.node, sink: sink,
                                                         reader: LogReader(directory: log.configuration.directory), io: io)
                let predicted = state.withLock { $0.predictor.duration(forRows: table.keyCount) }
                let planned = ContinuousClock.now
                try await sink.apply(plan.batch)
                logger.debug("checkpoint committed", metadata: [
                    "rows": "\(table.keyCount)", "before_take": "\(taken - startedAt)",
                    "fence_and_plan": "\(planned - taken)", "transaction": "\(ContinuousClock.now - planned)"])
                recordCommit(rows: table.keyCount, duration: ContinuousClock.now - startedAt, predicted: predicted,
                             oldestPendingAt: pendingSince)
                if !plan.droppedRequests.isEmpty {
                    state.withLock { $0.status.requestsDeduplicated += plan.droppedRequests.count }
                }
            } catch CheckpointSinkError.outcomeUnknown(let reason) {
                // Re-adding could count twice: forget the sums; the next pass reads the LSN
                // back, recognises only `checkpointLSN` or `target`, and rebuilds from the log.
                compactor.settle(.unknown)
                state.withLock { $0.position = .inDoubt(known: checkpointLSN, target: target) }
                throw CheckpointSinkError.outcomeUnknown(reason: reason)
            } catch CheckpointSinkError.conflict(let node, let expectedLSN, let stored) {
                // The row is not where this node left it. Never adopt that blindly.
                compactor.settle(.unknown)
                var actual = stored
                if actual == nil { actual = try await sink.checkpointLSN(node: configuration.node) }
                let storedLSN = actual ?? 0
                _ = try await adopt(NodePosition.later(stored: storedLSN, known: checkpointLSN, inDoubtTarget: nil,
                                                       log: logExtent))
                throw CheckpointSinkError.conflict(node: node, expectedLSN: expectedLSN, storedLSN: storedLSN)
            } catch {
                compactor.settle(.rolledBack(pendingSince: pendingSince))
                throw error
            }
            compactor.settle(.committed)
            state.withLock { $0.position = .known(target) }
            expected = target
        }
        // Delete by the LSN read back from the sink, never by what we believe we wrote. An
        // idle pass reads it too, so a row moved by someone else is noticed within an interval.
        let stored = try await sink.checkpointLSN(node: configuration.node)
        guard stored == expected else {
            _ = try await adopt(NodePosition.later(stored: stored, known: expected, inDoubtTarget: nil, log: logExtent))
            throw CheckpointSinkError.conflict(node: configuration.node, expectedLSN: expected, storedLSN: stored)
        }
        try await confirm(stored)
        state.withLock { $0.status.checkpointLSN = stored }
        // Keep the segments of the last `keepCheckpoints` checkpoints for a replay, unless the
        // log is over its disk budget: then taking writes again wins, and only what the
        // latest checkpoint covers is deleted.
        let overBudget = log.configuration.maxLogSizeBytes.map { log.sizeBytes > $0 } ?? false
        let through = state.withLock { state -> LSN? in
            if overBudget { return state.recentConfirmed.last }
            return state.recentConfirmed.count == configuration.keepCheckpoints ? state.recentConfirmed.first : nil
        }
        // A closed or stopped log (shutdown, disk failure) keeps its segments: the next
        // start deletes them. A failed delete is retried by the next pass.
        guard let through, let truncation = try? await log.truncate(through: through) else { return }
        if let failure = truncation.failure {
            logger.warning("could not delete an applied segment; will retry", metadata: ["error": "\(failure)"])
        }
    }

    /// Deletes a bounded batch of this node's request rows older than the retention.
    /// Failures only delay it: the rows are harmless until then.
    private func pruneExpiredRequests() async {
        let retentionMillis = configuration.requestRetention.components.seconds * 1_000
        let before = Int64(Date().timeIntervalSince1970 * 1_000) - retentionMillis
        do {
            _ = try await sink.pruneRequests(node: configuration.node, takenBeforeMillis: before,
                                             limit: configuration.pruneBatchRows)
        } catch {
            logger.debug("could not prune expired request ids; will retry", metadata: ["error": "\(error)"])
        }
    }

    private func recordSuccess(duration: Duration) {
        let wasDown = state.withLock { state -> Bool in
            let wasDown = !state.status.sinkAvailable
            state.status.sinkAvailable = true
            state.status.lastError = nil
            state.status.checkpointsCompleted += 1
            state.status.lastDuration = duration
            state.status.lastSuccessAt = .now
            return wasDown
        }
        if wasDown { logger.notice("checkpoints are reaching PostgreSQL") }
    }

    /// A checkpoint transaction committed: teach the predictor, and report how old its
    /// oldest increment was at the COMMIT (the freshness actually delivered).
    private func recordCommit(rows: Int, duration: Duration, predicted: Duration,
                              oldestPendingAt: ContinuousClock.Instant?) {
        let age = oldestPendingAt.map { ContinuousClock.now - $0 }
        state.withLock { state in
            state.predictor.record(rows: rows, duration: duration, predicted: predicted)
            if let age { state.status.lastFreshness = age }
        }
        configuration.onCommit?(CheckpointCommit(rows: rows, duration: duration, predicted: predicted, oldestAge: age))
        if let age, age > CheckpointerConfiguration.freshnessBound {
            logger.warning("a checkpoint committed increments older than 10 s", metadata: [
                "age_seconds": "\(PassPredictor.seconds(age))", "rows": "\(rows)",
                "duration_seconds": "\(PassPredictor.seconds(duration))",
                "predicted_seconds": "\(PassPredictor.seconds(predicted))"])
        }
    }

    private func recordFailure(_ error: any Error) {
        let message = String(describing: error)
        let wasUp = state.withLock { state -> Bool in
            let wasUp = state.status.sinkAvailable || state.status.checkpointsFailed == 0
            state.status.sinkAvailable = false
            state.status.lastError = message
            state.status.checkpointsFailed += 1
            return wasUp
        }
        if wasUp && !(error is NodePositionError) {
            logger.error("checkpoint failed; the log keeps every increment and checkpoints retry",
                         metadata: ["error": "\(message)"])
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}

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
    private struct State {
        /// The stored checkpoint LSN as last known; nil means "read it back before anything".
        var checkpointLSN: LSN?
        var status = CheckpointerStatus()
        /// Recent pass durations, for the deadline (how early to start).
        var recentDurations: [Duration] = []
    }

    private let log: Log
    private let compactor: Compactor
    private let sink: any CheckpointSink
    public let configuration: CheckpointerConfiguration
    private let logger: Logger
    private let io: BlockingExecutor
    private let state = Mutex(State())
    /// Serialises passes: the scheduled loop and `finalCheckpoint` never overlap.
    private let passLock = AsyncLock()

    public init(log: Log, compactor: Compactor, sink: any CheckpointSink,
                configuration: CheckpointerConfiguration, logger: Logger) {
        self.log = log
        self.compactor = compactor
        self.sink = sink
        self.configuration = configuration
        self.logger = logger
        self.io = BlockingExecutor(name: "tally-checkpoint-io")
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
        return status
    }

    /// Runs checkpoints until the task is cancelled.
    public func run() async {
        let clock = ContinuousClock()
        var nextRegular = clock.now + configuration.interval
        var backoff = configuration.initialBackoff
        while !Task.isCancelled {
            let now = clock.now
            if isDue(now: now, nextRegular: nextRegular) {
                do {
                    try await checkpoint()
                    backoff = configuration.initialBackoff
                    nextRegular = clock.now + configuration.interval
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

    private func isDue(now: ContinuousClock.Instant, nextRegular: ContinuousClock.Instant) -> Bool {
        let (known, expected) = state.withLock { ($0.checkpointLSN != nil, $0.recentDurations.max() ?? .zero) }
        if !known || now >= nextRegular { return true }
        guard configuration.keepsFreshnessBound, let oldest = compactor.oldestPendingAt else { return false }
        // Start early enough that the COMMIT lands within the bound of the oldest increment.
        return now >= oldest + CheckpointerConfiguration.freshnessBound - expected - configuration.deadlineMargin
    }

    /// One checkpoint pass, now. Throws when the sink failed; the state stays consistent.
    public func checkpoint() async throws {
        try await passLock.withLock { try await self.pass() }
    }

    /// The last checkpoint before exit: the caller has closed the log, so this pass makes
    /// PostgreSQL hold every acknowledged increment. Retries until `timeout`.
    public func finalCheckpoint(timeout: Duration = .seconds(5)) async throws {
        let deadline = ContinuousClock.now + timeout
        var backoff = configuration.initialBackoff
        while true {
            do {
                try await checkpoint()
                if compactor.pending.records == 0 { return }
            } catch {
                if ContinuousClock.now + backoff >= deadline { throw error }
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    private func pass() async throws {
        let started = ContinuousClock.now
        do {
            let checkpointLSN = try await establishCheckpointLSN()
            // Roll so that everything up to here sits in closed, deletable segments. A stopped
            // or closed log cannot roll, but what it holds must still be checkpointed.
            _ = try? await log.rollSegment()
            let durable = log.durableLSN
            try await io.run { [compactor] in try compactor.catchUp(through: durable) }
            try await apply(after: checkpointLSN)
            recordSuccess(duration: ContinuousClock.now - started)
        } catch {
            recordFailure(error)
            throw error
        }
    }

    /// The stored checkpoint LSN, reading it back (and resetting the compactor to it) when
    /// it is not known: at start, and after a conflict or an unknown commit outcome.
    private func establishCheckpointLSN() async throws -> LSN {
        if let known = state.withLock({ $0.checkpointLSN }) { return known }
        let stored = try await sink.checkpointLSN(node: configuration.node)
        let durable = log.durableLSN
        guard stored <= durable else {
            throw CheckpointerError.checkpointAheadOfLog(checkpointLSN: stored, durableLSN: durable)
        }
        compactor.reset(after: stored)
        state.withLock { $0.checkpointLSN = stored }
        logger.info("checkpoint position read", metadata: ["lsn": "\(stored)", "durable_lsn": "\(durable)"])
        return stored
    }

    private func apply(after checkpointLSN: LSN) async throws {
        let pendingSince = compactor.oldestPendingAt
        guard let table = compactor.take() else { return }
        precondition(table.baseLSN == checkpointLSN, "compactor base \(table.baseLSN) is not the checkpoint \(checkpointLSN)")
        if !table.isEmpty {
            let batchLSN = table.lastLSN
            do {
                // Sorting a million keys takes a few hundred milliseconds: not on the
                // cooperative pool, whose two threads here also run the HTTP handlers.
                let deltas = try await io.run { table.sortedDeltas() }
                try await sink.apply(CheckpointBatch(node: configuration.node, previousLSN: table.baseLSN,
                                                     lsn: batchLSN, deltas: deltas))
            } catch let error as CheckpointSinkError {
                // Unknown outcome or a moved LSN: re-adding could count twice. Forget the
                // sums; the next pass reads the LSN back and rebuilds from the log.
                state.withLock { $0.checkpointLSN = nil }
                throw error
            } catch {
                compactor.restore(table, pendingSince: pendingSince)
                throw error
            }
            state.withLock { $0.checkpointLSN = batchLSN }
        }
        // Delete by the LSN read back from the sink, never by what we believe we wrote.
        let stored = try await sink.checkpointLSN(node: configuration.node)
        guard stored == table.lastLSN else {
            state.withLock { $0.checkpointLSN = nil }
            throw CheckpointSinkError.conflict(node: configuration.node, expectedLSN: table.lastLSN, storedLSN: stored)
        }
        // A closed or stopped log (shutdown, disk failure) keeps its segments: the next
        // start deletes them. A failed delete is retried by the next pass.
        guard let truncation = try? await log.truncate(through: stored) else { return }
        if let failure = truncation.failure {
            logger.warning("could not delete an applied segment; will retry", metadata: ["error": "\(failure)"])
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
            state.status.checkpointLSN = state.checkpointLSN
            state.recentDurations.append(duration)
            if state.recentDurations.count > 8 { state.recentDurations.removeFirst() }
            return wasDown
        }
        if wasDown { logger.notice("checkpoints are reaching PostgreSQL") }
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
        if wasUp {
            logger.error("checkpoint failed; the log keeps every increment and checkpoints retry",
                         metadata: ["error": "\(message)"])
        }
    }
}

public enum CheckpointerError: Error, CustomStringConvertible {
    /// PostgreSQL holds a checkpoint past the end of this node's log: the log lost data, or
    /// the node id is shared with another data directory. Counting stops rather than guess.
    case checkpointAheadOfLog(checkpointLSN: LSN, durableLSN: LSN)

    public var description: String {
        switch self {
        case .checkpointAheadOfLog(let checkpoint, let durable):
            "PostgreSQL's checkpoint LSN \(checkpoint) is past this node's log end \(durable): the log lost data "
                + "or another data directory uses the same node id"
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}

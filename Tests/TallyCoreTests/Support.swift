import Foundation
import Logging
import Synchronization
import TallyCore
import TallyLog

/// A fresh temporary directory, removed on deinit.
final class TemporaryDirectory {
    let path: String
    init() {
        var template = Array((NSTemporaryDirectory() + "tally-core-XXXXXX").utf8CString)
        path = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// An in-memory sink with the same compare-and-set contract as PostgreSQL's, and switches to
/// inject the faults the checkpointer must survive. The real sink is tested against a real
/// server in TallyIntegrationTests; this one makes fault timing exact.
final class MemorySink: CheckpointSink {
    enum Fault: Sendable {
        case none
        /// The transaction fails before COMMIT: nothing is applied.
        case failBeforeCommit
        /// The transaction commits, then the connection "drops": the caller hears nothing.
        case commitThenLoseConnection
        /// The connection drops before COMMIT reaches the server; the caller cannot tell.
        case loseConnectionBeforeCommit
        /// Reading the LSN fails (PostgreSQL unreachable).
        case unreachable
    }

    struct State {
        var totals: [LogKey: Int128] = [:]
        var daily: [DeltaTable.Cell: Int128] = [:]
        var requests: [String: RequestRow] = [:]
        var checkpoints: [UUID: LSN] = [:]
        var fault: Fault = .none
        var applied = 0
    }

    let state = Mutex(State())

    func setFault(_ fault: Fault) { state.withLock { $0.fault = fault } }
    /// What another process (or a restore of PostgreSQL) does to the row behind the node's back.
    func setStored(_ node: UUID, _ lsn: LSN, totals: [LogKey: Int128]? = nil) {
        state.withLock { state in
            state.checkpoints[node] = lsn
            if let totals { state.totals = totals }
        }
    }
    var totals: [LogKey: Int128] { state.withLock { $0.totals } }
    func storedLSN(_ node: UUID) -> LSN { state.withLock { $0.checkpoints[node] ?? 0 } }

    func checkpointLSN(node: UUID) async throws -> LSN {
        try state.withLock { state in
            if case .unreachable = state.fault { throw SinkDown() }
            return state.checkpoints[node] ?? 0
        }
    }

    func apply(_ batch: CheckpointBatch) async throws {
        try state.withLock { state in
            switch state.fault {
            case .unreachable, .failBeforeCommit: throw SinkDown()
            case .loseConnectionBeforeCommit:
                throw CheckpointSinkError.outcomeUnknown(reason: "injected: connection lost before COMMIT")
            case .none, .commitThenLoseConnection: break
            }
            let stored = state.checkpoints[batch.node] ?? 0
            guard stored == batch.previousLSN else {
                throw CheckpointSinkError.conflict(node: batch.node, expectedLSN: batch.previousLSN, storedLSN: stored)
            }
            precondition(zip(batch.deltas, batch.deltas.dropFirst()).allSatisfy { ($0.key, $0.day) < ($1.key, $1.day) },
                         "deltas unsorted")
            if let taken = batch.requests.first(where: { state.requests[$0.id] != nil }) {
                throw CheckpointSinkError.requestTakenMeanwhile(id: taken.id)
            }
            for request in batch.requests { state.requests[request.id] = request }
            for delta in batch.deltas {
                state.totals[delta.key, default: 0] += delta.sum
                state.daily[DeltaTable.Cell(key: delta.key, day: delta.day), default: 0] += delta.sum
            }
            state.checkpoints[batch.node] = batch.lsn
            state.applied += 1
            if case .commitThenLoseConnection = state.fault {
                throw CheckpointSinkError.outcomeUnknown(reason: "injected: connection lost after COMMIT")
            }
        }
    }

    func knownRequests(_ ids: [String]) async throws -> Set<String> {
        try state.withLock { state in
            if case .unreachable = state.fault { throw SinkDown() }
            return Set(ids.filter { state.requests[$0] != nil })
        }
    }

    func pruneRequests(node: UUID, takenBeforeMillis beforeMillis: Int64, limit: Int) async throws -> Int {
        state.withLock { state in
            let expired = state.requests.filter { $0.value.arrivalMillis < beforeMillis }.keys.prefix(limit)
            for id in expired { state.requests[id] = nil }
            return expired.count
        }
    }

    struct SinkDown: Error {}
}

let testNode = UUID(uuidString: "00000000-0000-4000-8000-00000000abcd")!

func randomRecords(_ count: Int, keys: Int, using generator: inout some RandomNumberGenerator) -> [LogRecord] {
    (0..<count).map { _ in
        LogRecord(key: LogKey(high: UInt64.random(in: 0..<UInt64(keys), using: &generator), low: 7),
                  value: Int64.random(in: 1...1_000_000, using: &generator), arrivalMillis: 0)
    }
}

/// Sums of `records`, as PostgreSQL should end up holding them.
func expectedTotals(_ records: [LogRecord]) -> [LogKey: Int128] {
    records.reduce(into: [:]) { $0[$1.key, default: 0] += Int128($1.value) }
}

/// A log + compactor + checkpointer wired as the daemon wires them, on `directory`.
struct Node {
    let log: Log
    let compactor: Compactor
    let checkpointer: Checkpointer

    init(directory: String, sink: MemorySink, segmentSizeBytes: Int = 64 << 20, keepCheckpoints: Int = 1,
         node: UUID = testNode, maxPendingKeys: Int = .max) throws {
        let compactor = Compactor(reader: LogReader(directory: directory), maxPendingKeys: maxPendingKeys)
        var config = LogConfiguration(directory: directory, nodeID: LogKey(node))
        config.segmentSizeBytes = segmentSizeBytes
        config.onDurable = { compactor.absorb($0) }
        log = try Log.open(config)
        self.compactor = compactor
        var checkpointing = CheckpointerConfiguration(node: node)
        checkpointing.keepCheckpoints = keepCheckpoints
        checkpointer = Checkpointer(log: log, compactor: compactor, sink: sink, configuration: checkpointing,
                                    logger: Logger(label: "test"))
    }
}

/// A deterministic generator, so a failing random test can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

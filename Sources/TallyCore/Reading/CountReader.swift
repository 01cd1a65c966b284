import Foundation
import TallyLog

/// Where persisted totals come from (PostgreSQL, through `TallyPostgres`): each read also
/// returns this node's checkpoint LSN from the same snapshot, so that the pending part can
/// be taken exactly from beyond it.
public protocol PersistedCounts: Sendable {
    func total(of key: LogKey, checkpointOf node: UUID) async throws -> PersistedRead<DecimalTotal>
    /// Days with a total, ascending.
    func dailyTotals(of key: LogKey, in days: ClosedRange<Day>, checkpointOf node: UUID) async throws
        -> PersistedRead<[(day: Day, total: DecimalTotal)]>
    func total(of key: LogKey, in days: ClosedRange<Day>, checkpointOf node: UUID) async throws -> PersistedRead<DecimalTotal>
}

/// A persisted value and the reading node's checkpoint LSN in the same snapshot.
public struct PersistedRead<Value: Sendable>: Sendable {
    public var value: Value
    /// 0 when the node has never checkpointed.
    public var checkpointLSN: LSN

    public init(value: Value, checkpointLSN: LSN) {
        self.value = value
        self.checkpointLSN = checkpointLSN
    }
}

/// One key's count as a node answers it: PostgreSQL's part plus this node's durable part
/// that no checkpoint has carried there yet, so a client reads its own writes on the node
/// that acknowledged them. Other nodes' pending parts reach PostgreSQL within 10 s.
public struct Count: Sendable, Equatable {
    public var key: LogKey
    public var total: DecimalTotal
    public var persisted: DecimalTotal
    public var pending: DecimalTotal
}

/// Reads counts: persisted from `PersistedCounts`, pending from the compactor, matched by
/// checkpoint LSN. A checkpoint that commits between the two halves of a read leaves a
/// boundary the compactor no longer shows; the read is then done again (a few times at
/// most). It never guesses: when PostgreSQL cannot be read it throws, and when the
/// compactor cannot say exactly (still reading the log at start) it throws
/// `CountReadError.notCountingYet`.
public struct CountReader: Sendable {
    public let persisted: any PersistedCounts
    public let compactor: Compactor
    public let node: UUID
    /// Reads whose halves straddle a checkpoint are retried this many times.
    public var attempts = 4

    public init(persisted: any PersistedCounts, compactor: Compactor, node: UUID) {
        self.persisted = persisted
        self.compactor = compactor
        self.node = node
    }

    public func count(of key: LogKey) async throws -> Count {
        try await consistently {
            let read = try await persisted.total(of: key, checkpointOf: node)
            guard let pending = compactor.pending(of: key, afterCheckpoint: read.checkpointLSN) else { return nil }
            let pendingTotal = DecimalTotal(pending)
            return Count(key: key, total: read.value.adding(pendingTotal), persisted: read.value, pending: pendingTotal)
        }
    }

    /// Every day of `days` with a count, ascending, this node's pending part included.
    public func dailyTotals(of key: LogKey, in days: ClosedRange<Day>) async throws -> [(day: Day, total: DecimalTotal)] {
        try await consistently {
            let read = try await persisted.dailyTotals(of: key, in: days, checkpointOf: node)
            guard let pending = compactor.pendingByDay(of: key, in: days, afterCheckpoint: read.checkpointLSN) else {
                return nil
            }
            var merged: [Day: DecimalTotal] = [:]
            for (day, total) in read.value { merged[day] = total }
            for (day, sum) in pending { merged[day] = (merged[day] ?? .zero).adding(sum) }
            return merged.filter { !$0.value.isZero }.sorted { $0.key < $1.key }.map { (day: $0.key, total: $0.value) }
        }
    }

    /// The key's total over `days`, this node's pending part included.
    public func total(of key: LogKey, in days: ClosedRange<Day>) async throws -> DecimalTotal {
        try await consistently {
            let read = try await persisted.total(of: key, in: days, checkpointOf: node)
            guard let pending = compactor.pending(of: key, in: days, afterCheckpoint: read.checkpointLSN) else { return nil }
            return read.value.adding(pending)
        }
    }

    private func consistently<T>(_ read: () async throws -> T?) async throws -> T {
        for _ in 0..<attempts {
            if let value = try await read() { return value }
            await Task.yield()
        }
        throw CountReadError.notCountingYet
    }
}

public enum CountReadError: Error, CustomStringConvertible {
    /// The node is still reading its log (at start, or after a checkpoint whose outcome was
    /// unknown): its pending part is not exact yet.
    case notCountingYet

    public var description: String {
        "this node is still reading its log after a restart or an interrupted checkpoint; retry shortly"
    }
}

import TallyLog

/// What the checkpointer reports to `/readyz` and `/metrics`.
public struct CheckpointerStatus: Sendable {
    /// The checkpoint LSN last read back from the sink, nil until it was first reached.
    public var checkpointLSN: LSN?
    /// False from a failed checkpoint until the next success.
    public var sinkAvailable = false
    public var lastError: String?
    public var checkpointsCompleted = 0
    public var checkpointsFailed = 0
    public var lastDuration: Duration?
    public var lastSuccessAt: ContinuousClock.Instant?
    /// Absorbed but not yet checkpointed.
    public var pendingKeys = 0
    public var pendingRecords: UInt64 = 0
    /// When the oldest pending record was absorbed.
    public var oldestPendingAt: ContinuousClock.Instant?

    /// How long the oldest pending increment has waited for PostgreSQL.
    public func lag(now: ContinuousClock.Instant = .now) -> Duration {
        oldestPendingAt.map { now - $0 } ?? .zero
    }
}

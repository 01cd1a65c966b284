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
    /// Age of the oldest increment of the last committed checkpoint, at its COMMIT.
    public var lastFreshness: Duration?
    public var lastSuccessAt: ContinuousClock.Instant?
    /// Absorbed but not yet checkpointed.
    public var pendingKeys = 0
    public var pendingRecords: UInt64 = 0
    /// When the oldest pending record was absorbed.
    public var oldestPendingAt: ContinuousClock.Instant?
    /// The compactor's memory bound, and whether it is reached (the rest waits in the log).
    public var maxPendingKeys = Int.max
    public var overBudget = false
    /// Set for good once the log and PostgreSQL's checkpoint were found not to fit: the node
    /// refuses writes and stops counting until an operator acts.
    public var positionError: NodePositionError?
    /// Tagged requests whose records a checkpoint did not count: the id was already counted
    /// (a retry, on this node or another), or came twice in one interval.
    public var requestsDeduplicated = 0
    /// Times PostgreSQL's checkpoint LSN was found lower than this node had confirmed.
    public var regressions = 0
    public var lastRegression: Regression?

    /// PostgreSQL's checkpoint LSN went back from `fromLSN` to `toLSN`; the log after
    /// `toLSN` is being applied again.
    public struct Regression: Sendable, Equatable {
        public var fromLSN: LSN
        public var toLSN: LSN
    }

    /// Whether a regression is still being healed: PostgreSQL has not yet been brought back
    /// to where it was before it lost commits.
    public var isHealingRegression: Bool {
        guard let lastRegression else { return false }
        return (checkpointLSN ?? 0) < lastRegression.fromLSN
    }

    /// How long the oldest pending increment has waited for PostgreSQL.
    public func lag(now: ContinuousClock.Instant = .now) -> Duration {
        oldestPendingAt.map { now - $0 } ?? .zero
    }
}

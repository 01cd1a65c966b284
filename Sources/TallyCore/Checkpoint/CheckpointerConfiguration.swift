import Foundation

/// When and how hard the checkpointer works.
public struct CheckpointerConfiguration: Sendable {
    /// The node whose checkpoint row this checkpointer moves.
    public var node: UUID
    /// Regular checkpoint period.
    public var interval: Duration = .seconds(9)
    /// An acknowledged increment must be in PostgreSQL within this long.
    public static let freshnessBound: Duration = .seconds(10)
    /// Safety margin subtracted from the freshness deadline (`PassPredictor` adds the worst
    /// recent underestimate of a pass's duration to it). A second: under saturation the
    /// scheduler itself may wake late, and with 0.5 s one pass in a CI run committed past 10 s.
    public var deadlineMargin: Duration = .seconds(1)
    /// Retry backoff after a failed checkpoint: doubles from `initialBackoff` up to `maxBackoff`.
    public var initialBackoff: Duration = .milliseconds(200)
    public var maxBackoff: Duration = .seconds(5)
    /// How often the scheduler looks at its deadlines.
    public var tick: Duration = .milliseconds(100)
    /// How long a request id counts as taken (`tally_requests` rows are pruned after it; a
    /// retry later than this counts again). Each pass deletes at most `pruneBatchRows`.
    public var requestRetention: Duration = .seconds(24 * 3600)
    public var pruneBatchRows = 10_000
    /// Over the compactor's memory bound, how many LSN slices (each a checkpoint) one pass
    /// applies at most before the scheduler looks at its deadlines again.
    public var maxSlicesPerPass = 64
    /// Segments stay on disk until this many later checkpoints have been confirmed, so that
    /// a PostgreSQL that loses its last commits (a restore, an asynchronous standby promoted)
    /// can be replayed from the log. 1 deletes a segment as soon as it is applied.
    public var keepCheckpoints = 1 {
        didSet { precondition(keepCheckpoints >= 1, "at least the last checkpoint is kept") }
    }

    /// Told of every committed checkpoint transaction (metrics). Must not block.
    public var onCommit: (@Sendable (CheckpointCommit) -> Void)?

    public init(node: UUID) {
        self.node = node
    }

    /// Whether the configured interval can keep the 10-second freshness promise.
    public var keepsFreshnessBound: Bool { interval < Self.freshnessBound }
}

/// One committed checkpoint transaction, as `CheckpointerConfiguration.onCommit` sees it.
public struct CheckpointCommit: Sendable {
    /// (key, day) rows it upserted.
    public var rows: Int
    /// From the start of its pass (or slice) to the COMMIT's answer.
    public var duration: Duration
    /// What `PassPredictor` expected that duration to be.
    public var predicted: Duration
    /// How long its oldest increment had been durable at the COMMIT: the freshness
    /// delivered, which the promise bounds by 10 s. Nil when unknown.
    public var oldestAge: Duration?
}

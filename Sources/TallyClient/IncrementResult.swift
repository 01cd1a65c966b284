/// What ``TallyClient/increment(key:by:)`` did with an increment. Only `.queued` will be
/// sent; whether it was delivered shows in ``TallyClient/Statistics`` and the
/// ``TallyClient/ShutdownReport``.
public enum IncrementResult: Sendable, Equatable {
    /// In the queue; it will be sent in a batch.
    case queued
    /// The queue was full and the policy is `.dropNewest`: not counted, and counted as dropped.
    case dropped
    /// The client is shutting down or stopped: not counted, and counted as dropped.
    case closed
    /// The caller's task was cancelled while it waited for room (`.wait`): counted as dropped.
    case cancelled
    /// The value is below 1 (Tally counts up only): nothing happened.
    case invalid
}

extension TallyClient {
    /// Running totals of a client, in increments (calls of `increment(key:by:)`), except
    /// `retried`, which counts attempts. The same figures go to swift-metrics.
    public struct Statistics: Sendable, Equatable {
        /// Waiting to be delivered now (open, sealed or in flight).
        public var queued = 0
        /// The lines those take in the queue now (≤ `capacityLines`).
        public var queuedLines = 0
        /// Delivered: the daemon answered that they are durable.
        public var sent = 0
        /// Attempts that were retried (a timeout, a reset, 503, 429, a 5xx).
        public var retried = 0
        /// Refused at the door: a full queue under `.dropNewest`, a cancelled wait, a closed client.
        public var dropped = 0
        /// Refused for good by the daemon (400, 401, 409, 413): logged with the reason.
        public var failed = 0
        /// Not confirmed when the client stopped: listed in the ``ShutdownReport``.
        public var undelivered = 0

        public init() {}
    }

    /// What graceful shutdown could not deliver within its bound.
    public struct ShutdownReport: Sendable, Equatable {
        /// Batches the daemon never confirmed: never sent, or sent without an answer before
        /// the bound (the daemon may have counted those). Each keeps its idempotency id, so
        /// sending one again later (as `POST /increments` with `Idempotency-Key: id`,
        /// within the daemon's window) still counts it at most once.
        public var undelivered: [IncrementBatch]
        /// The client's totals at the end.
        public var statistics: Statistics

        /// Whether everything queued was delivered (or refused for good) in time.
        public var isComplete: Bool { undelivered.isEmpty }
        /// How many increments (calls) the undelivered batches hold.
        public var undeliveredCalls: Int { undelivered.reduce(0) { $0 + $1.calls } }
    }
}

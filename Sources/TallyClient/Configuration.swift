/// How a ``TallyClient`` queues, batches, retries and stops. Every bound has its unit in its
/// name; the defaults suit a web application counting its requests.
public struct TallyClientConfiguration: Sendable {
    /// What ``TallyClient/increment(key:by:)`` does when the queue is full.
    public enum WhenFull: Sendable, Equatable {
        /// Refuse the new increment at once (the caller never waits) and count it in
        /// `tally_client_dropped_increments`. Right for telemetry such as request counts:
        /// the application must never slow down because Tally is away.
        case dropNewest
        /// Suspend the caller (never a thread) until the queue has room. Right when every
        /// increment matters more than the caller's latency.
        case wait
    }

    /// The daemon's HTTP address, e.g. `http://127.0.0.1:8080`. Names are registered over
    /// HTTP (`PUT /keys/{key}`) even when increments travel over gRPC.
    public var url: String

    /// An API key, sent as `Authorization: Bearer <key>` (the daemon's `--api-keys-file`).
    public var apiKey: String?

    /// The bound of the queue, in lines: distinct keys waiting in the open batch, plus the
    /// lines of sealed batches waiting or in flight. An increment to a key already waiting in
    /// the open batch is added to its line and takes no room, so a few hot keys never fill it.
    public var capacityLines: Int = 100_000

    public var whenFull: WhenFull = .dropNewest

    /// A batch is sealed when its lines reach this count (each line about 80 bytes of NDJSON:
    /// 1,000 lines are far below the daemon's 1 MiB and 10,000-line bounds).
    public var maxBatchLines: Int = 1_000

    /// ...or when its first line has waited this long: the delay a quiet client adds.
    public var flushIntervalSeconds: Double = 0.2

    /// Batches sent at the same time. Each waits for the daemon's fdatasync; meanwhile the
    /// next batch fills, so two keep the pipe full without many connections.
    public var maxConcurrentRequests: Int = 2

    /// How long one attempt may take before it counts as failed and is retried (with the same
    /// idempotency id, so a slow success and its retry are still counted once).
    public var requestTimeoutSeconds: Double = 5

    /// The first retry waits up to this long; each further one up to twice as long as the
    /// previous, never longer than ``retryMaxDelaySeconds``, each a random fraction of that
    /// ("full jitter"), so many clients retrying one daemon spread out instead of in waves.
    public var retryBaseDelaySeconds: Double = 0.05
    public var retryMaxDelaySeconds: Double = 5

    /// On graceful shutdown, how long the client keeps sending what is queued before it gives
    /// up and reports the rest (``TallyClient/ShutdownReport``).
    public var shutdownTimeoutSeconds: Double = 5

    /// Names waiting to be registered (`PUT /keys/{key}`); more are not registered (and
    /// logged once): a name per route or method is a handful, thousands are a bug.
    public var maxPendingNames: Int = 1_024

    /// A label for this client in `tally_client_*` metrics (dimension `client`).
    public var metricsLabel: String = "default"

    public init(url: String) {
        self.url = url
    }

    /// Why this configuration cannot work, or nil.
    var problem: String? {
        // Every `…Seconds` value becomes a Duration of Int64 nanoseconds: finite and at most
        // a day (longer than any timeout or delay a client means, far below the overflow).
        let secondsValues = [flushIntervalSeconds, requestTimeoutSeconds, retryBaseDelaySeconds,
                             retryMaxDelaySeconds, shutdownTimeoutSeconds]
        if secondsValues.contains(where: { !$0.isFinite || $0 > Self.maxSeconds }) {
            return "every …Seconds value must be finite and at most \(Int(Self.maxSeconds)) (a day)"
        }
        if capacityLines < 1 { return "capacityLines must be at least 1" }
        if !(1...10_000).contains(maxBatchLines) { return "maxBatchLines must be 1…10,000 (the daemon's default bound)" }
        if maxConcurrentRequests < 1 { return "maxConcurrentRequests must be at least 1" }
        if !(flushIntervalSeconds > 0) { return "flushIntervalSeconds must be positive" }
        if !(requestTimeoutSeconds > 0) { return "requestTimeoutSeconds must be positive" }
        if !(retryBaseDelaySeconds > 0 && retryMaxDelaySeconds >= retryBaseDelaySeconds) {
            return "retry delays must be positive, the maximum at least the base"
        }
        if !(shutdownTimeoutSeconds >= 0) { return "shutdownTimeoutSeconds must not be negative" }
        return nil
    }
}

extension TallyClientConfiguration {
    static let maxSeconds: Double = 86_400
}

extension Duration {
    /// `seconds` as a Duration, for the configuration's `…Seconds` values.
    static func seconds(double seconds: Double) -> Duration {
        .nanoseconds(Int64((seconds * 1e9).rounded()))
    }
}

import TallyCore
import Foundation
import Logging
import TallyIngest

/// Everything `tally serve` can be told. The command line fills it; tests build it directly.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var dataDirectory = "data"
    public var databaseURL: String
    public var checkpointInterval: Duration = .seconds(9)
    public var nodeID: UUID?
    /// Larger bodies get 413 before they are read whole (`POST /increment`).
    public var maxBodyBytes = 4 * 1024
    /// Limits of a `POST /increments` body.
    public var maxBatchBytes = 1 << 20
    public var maxBatchIncrements = 10_000
    /// How long an idempotency key counts as taken.
    public var idempotencyWindow: Duration = .seconds(24 * 3600)
    /// Token-bucket rate per client; nil turns rate limiting off.
    public var rateLimitPerSecond: Double?
    public var rateBurst = 100
    public var trustedProxies: Set<String> = []
    /// When set, every route but /healthz needs `Authorization: Bearer <key>`.
    public var apiKeys: APIKeys?
    public var maxLogBytes: Int? = 8 << 30
    /// The compactor's memory bound in pending (key, day) entries (`--max-pending-keys`).
    public var maxPendingKeys = CountingNode.defaultMaxPendingKeys
    public var segmentSizeBytes = 64 << 20
    /// Where the gRPC front listens (`--grpc-listen`); nil: no gRPC front.
    public var grpcHost: String?
    public var grpcPort = 9090
    /// PostgreSQL connections (each on a thread of its own) that serve the read routes.
    public var readConnections = 4
    /// Checkpoints whose segments stay on disk (replay after PostgreSQL lost commits).
    public var keepCheckpoints = 2
    /// Connections idle this long are closed (slow or abandoned clients hold nothing).
    public var idleTimeout: Duration = .seconds(30)
    /// Upper bound on the graceful stop after the drain (requests in flight, final checkpoint).
    public var shutdownTimeout: Duration = .seconds(9)
    /// After SIGTERM, how long `/readyz` answers 503 (`draining`) while the node still takes
    /// requests, so that load balancers move away before the listeners close. Zero: close at once.
    public var drainTime: Duration = .zero
    /// Adds `GET|POST /bench/ceiling`, a plain 200 with no work, to measure the HTTP ceiling.
    public var benchRoutes = false

    public init(databaseURL: String) {
        self.databaseURL = databaseURL
    }
}

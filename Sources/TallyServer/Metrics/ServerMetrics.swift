import Prometheus
import TallyCore
import TallyLog

/// The daemon's metrics, in Prometheus' text format at `GET /metrics`.
///
/// Request counters are created once for every (route, status) pair the server can answer,
/// so counting a request is an array lookup and an atomic add: no label dictionaries and
/// no allocation on the request path. Log and checkpoint gauges are read at scrape time.
public final class ServerMetrics: Sendable {
    public enum Route: Int, CaseIterable, Sendable {
        case increment, increments, healthz, readyz, metrics, counts, countsDaily, countsPeriod, reportsDaily, openapi, keys, other
        /// The route template: bounded label values, never a raw path.
        var label: String {
            ["/increment", "/increments", "/healthz", "/readyz", "/metrics", "/counts/{key}", "/counts/{key}/daily",
             "/counts/{key}/period", "/reports/daily", "/openapi.yaml", "/keys/{key}", "other"][rawValue]
        }
    }

    static let statuses = [200, 400, 401, 404, 405, 409, 413, 429, 500, 503]

    public let registry = PrometheusCollectorRegistry()
    private let requests: [Counter]
    private let ackLatency: DurationHistogram
    private let syncLatency: DurationHistogram
    private let recordsPerFrame: ValueHistogram
    private let checkpointFreshness: DurationHistogram
    private let rateLimited: Counter
    private let answeredOnEventLoop: Counter
    private let logBytes: Gauge
    private let logSegments: Gauge
    private let durableLSN: Gauge
    private let checkpointLSN: Gauge
    private let checkpointDuration: Gauge
    private let checkpointLag: Gauge
    private let pendingKeys: Gauge
    private let pendingRecords: Gauge
    private let checkpointFailures: Gauge
    private let checkpointsCompleted: Gauge
    private let postgresUp: Gauge
    private let acceptingWrites: Gauge
    private let positionErrors: [(kind: String, gauge: Gauge)]
    private let regressions: Gauge
    private let logBudget: Gauge
    private let diskFull: Gauge
    private let diskError: Gauge
    private let pendingKeysBudget: Gauge
    private let overBudget: Gauge

    public init() {
        var requests: [Counter] = []
        for route in Route.allCases {
            for status in Self.statuses {
                requests.append(registry.makeCounter(
                    name: "tally_http_requests_total", labels: [("route", route.label), ("status", String(status))],
                    help: "HTTP requests by route and status"))
            }
        }
        self.requests = requests
        let latencyBuckets: [Duration] = [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
                                          .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                          .milliseconds(100), .milliseconds(250), .seconds(1)]
        ackLatency = registry.makeDurationHistogram(
            name: "tally_increment_ack_seconds", buckets: latencyBuckets,
            help: "Time from receiving an increment to its durable 200")
        syncLatency = registry.makeDurationHistogram(
            name: "tally_log_fdatasync_seconds", buckets: latencyBuckets,
            help: "Write plus fdatasync time of each log frame")
        recordsPerFrame = registry.makeValueHistogram(
            name: "tally_log_records_per_frame", buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384],
            help: "Records per group-commit frame")
        checkpointFreshness = registry.makeDurationHistogram(
            name: "tally_checkpoint_freshness_seconds",
            buckets: [.milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(8), .seconds(9), .seconds(10),
                      .seconds(12), .seconds(15), .seconds(30), .seconds(60)],
            help: "Per committed checkpoint: how long its oldest increment had been durable at the COMMIT (the promise: at most 10 s)")
        rateLimited = registry.makeCounter(name: "tally_rate_limited_requests_total", help: "Requests refused with 429")
        answeredOnEventLoop = registry.makeCounter(
            name: "tally_http_increments_on_event_loop_total",
            help: "Increments answered on the event loop; the rest went through the router (pipelined requests)")
        logBytes = registry.makeGauge(name: "tally_log_bytes", help: "Bytes in the log's segment files")
        logSegments = registry.makeGauge(name: "tally_log_segments", help: "Segment files of the log")
        durableLSN = registry.makeGauge(name: "tally_log_durable_lsn", help: "Highest LSN on disk")
        checkpointLSN = registry.makeGauge(name: "tally_checkpoint_lsn", help: "LSN PostgreSQL holds for this node")
        checkpointDuration = registry.makeGauge(name: "tally_checkpoint_duration_seconds", help: "Duration of the last checkpoint")
        checkpointLag = registry.makeGauge(
            name: "tally_checkpoint_lag_seconds", help: "Age of the oldest increment not yet in PostgreSQL")
        pendingKeys = registry.makeGauge(name: "tally_pending_keys", help: "Distinct keys waiting for a checkpoint")
        pendingRecords = registry.makeGauge(name: "tally_pending_records", help: "Increments waiting for a checkpoint")
        checkpointFailures = registry.makeGauge(
            name: "tally_checkpoint_failures", help: "Checkpoints that failed since start")
        checkpointsCompleted = registry.makeGauge(
            name: "tally_checkpoints_completed", help: "Checkpoints that reached PostgreSQL since start")
        postgresUp = registry.makeGauge(name: "tally_postgres_up", help: "1 while checkpoints reach PostgreSQL")
        acceptingWrites = registry.makeGauge(
            name: "tally_log_accepting_writes", help: "1 while the log takes increments; 0 when stopped, held or over budget")
        let registry = self.registry
        positionErrors = ["checkpoint_ahead_of_log", "records_missing", "checkpoint_moved_elsewhere"].map { kind in
            (kind, registry.makeGauge(
                name: "tally_node_position_error", labels: [("kind", kind)],
                help: "1 when the node refuses writes because its log and PostgreSQL's checkpoint do not fit"))
        }
        regressions = registry.makeGauge(
            name: "tally_checkpoint_regressions",
            help: "Times since start that PostgreSQL's checkpoint LSN for this node went backwards")
        logBudget = registry.makeGauge(
            name: "tally_log_budget_bytes", help: "The log's disk budget (--max-log-bytes); 0 when it has none")
        let stoppedHelp = "1 while the log refuses increments for this reason: disk_full passes by itself, "
            + "disk_error ends the process for a restart"
        diskFull = registry.makeGauge(name: "tally_log_stopped", labels: [("reason", "disk_full")], help: stoppedHelp)
        diskError = registry.makeGauge(name: "tally_log_stopped", labels: [("reason", "disk_error")], help: stoppedHelp)
        pendingKeysBudget = registry.makeGauge(
            name: "tally_pending_keys_budget", help: "The compactor's memory bound in pending (key, day) entries (--max-pending-keys)")
        overBudget = registry.makeGauge(
            name: "tally_compactor_over_budget",
            help: "1 while the pending sums are at their bound: the rest waits in the log and is applied in slices")
    }

    public func countRequest(_ route: Route, status: Int) {
        guard let index = Self.statuses.firstIndex(of: status) else { return }
        requests[route.rawValue * Self.statuses.count + index].increment()
    }

    public func recordAcknowledged(after duration: Duration) { ackLatency.record(duration) }
    public func recordRateLimited() { rateLimited.increment() }
    func recordAnsweredOnEventLoop() { answeredOnEventLoop.increment() }

    /// Called by the log's writer for each durable frame.
    public func recordFrame(_ frame: DurableFrame) {
        syncLatency.record(frame.writeAndSyncDuration)
        recordsPerFrame.record(Double(frame.recordCount))
    }

    /// Called by the checkpointer after each COMMIT.
    public func recordCheckpoint(_ commit: CheckpointCommit) {
        if let age = commit.oldestAge { checkpointFreshness.record(age) }
    }

    /// Renders the text format, refreshing the gauges that are read rather than pushed.
    public func render(log: Log, checkpointer: Checkpointer) -> [UInt8] {
        let status = checkpointer.status
        logBytes.set(Double(log.sizeBytes))
        logSegments.set(Double(log.segmentCount))
        durableLSN.set(Double(log.durableLSN))
        checkpointLSN.set(Double(status.checkpointLSN ?? 0))
        checkpointDuration.set(Double(status.lastDuration.map(Self.seconds) ?? 0.0))
        checkpointLag.set(Self.seconds(status.lag()))
        pendingKeys.set(Double(status.pendingKeys))
        pendingRecords.set(Double(status.pendingRecords))
        checkpointFailures.set(Double(status.checkpointsFailed))
        checkpointsCompleted.set(Double(status.checkpointsCompleted))
        postgresUp.set(status.sinkAvailable ? 1.0 : 0.0)
        acceptingWrites.set(log.acceptsAppends ? 1.0 : 0.0)
        for (kind, gauge) in positionErrors { gauge.set(status.positionError?.kind == kind ? 1.0 : 0.0) }
        regressions.set(Double(status.regressions))
        logBudget.set(Double(log.configuration.maxLogSizeBytes ?? 0))
        diskFull.set(log.diskFullReason == nil ? 0.0 : 1.0)
        diskError.set(log.stopReason.map { $0 == .closed ? 0.0 : 1.0 } ?? 0.0)
        pendingKeysBudget.set(Double(status.maxPendingKeys))
        overBudget.set(status.overBudget ? 1.0 : 0.0)
        return registry.emitToBuffer()
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}

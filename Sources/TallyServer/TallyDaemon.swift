import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import TallyCore
import TallyIngest
import TallyLog
import TallyPostgres

/// What the fronts (HTTP here, gRPC in its own room) share, built once per daemon: one
/// gate (so a rate limit means the same on both), one ingest (one request window), one
/// reader and one set of metrics.
public struct DaemonParts: Sendable {
    public let node: CountingNode
    public let ingest: Ingest
    public let reader: CountReader
    public let store: PostgresCountStore
    /// Key names (`PUT /keys/{key}`), on a connection of their own: the read pool is read-only.
    public let names: PostgresKeyNames
    public let gate: RequestGate
    let intake: IncrementIntake
    public let metrics: ServerMetrics
    public let configuration: ServerConfiguration
    public let logger: Logger
    /// Set when a graceful stop begins (`DrainService`).
    public let drain = DrainSignal()

    public init(node: CountingNode, reads: PostgresPool, metrics: ServerMetrics, configuration: ServerConfiguration,
                logger: Logger) {
        self.node = node
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        gate = RequestGate(
            keys: configuration.apiKeys,
            limiter: configuration.rateLimitPerSecond.map { RateLimiter(ratePerSecond: $0, burst: configuration.rateBurst) },
            trustedProxies: configuration.trustedProxies, onRateLimited: { metrics.recordRateLimited() })
        intake = IncrementIntake(maxBodyBytes: configuration.maxBodyBytes, maxBatchBytes: configuration.maxBatchBytes,
                                 maxBatchIncrements: configuration.maxBatchIncrements)
        store = PostgresCountStore(pool: reads)
        names = PostgresKeyNames(connections: PostgresKeyNames.daemonClient(url: configuration.databaseURL))
        ingest = Ingest(log: node.log, window: node.requestWindow, lookup: store)
        reader = CountReader(persisted: store, compactor: node.compactor, node: node.identity.id)
    }

    /// Whether the node takes writes now and is not draining (`/readyz`'s first judgement; gRPC health).
    public var isReady: Bool {
        !drain.isDraining && node.log.acceptsAppends && node.checkpointer.status.positionError == nil
    }

    /// The arrival clock every front stamps records with.
    public var arrivalClock: @Sendable () -> Int64 { intake.clock }
}

/// `tally serve`: the counting node behind the HTTP API (and any other front the caller
/// adds), run as a service group so that SIGTERM/SIGINT stop it in order — `/readyz` turns
/// 503 for the drain time while requests are still taken, then the fronts stop accepting and
/// finish their requests, then the log closes (flushing what is queued) and a final
/// checkpoint runs.
public enum TallyDaemon {
    /// - Parameter fronts: more services to run beside the HTTP front, made from the shared
    ///   parts (the gRPC front); they are stopped before the counting core.
    public static func run(_ configuration: ServerConfiguration, logger: Logger,
                           onListening: @escaping @Sendable (Int) async -> Void = { _ in },
                           fronts: @Sendable (DaemonParts) -> [any Service] = { _ in [] }) async throws {
        let client = PostgresClient(url: configuration.databaseURL)
        let metrics = ServerMetrics()
        var options = CountingNode.Options(dataDirectory: configuration.dataDirectory)
        options.requestedNodeID = configuration.nodeID
        options.segmentSizeBytes = configuration.segmentSizeBytes
        options.maxLogSizeBytes = configuration.maxLogBytes
        options.checkpointInterval = configuration.checkpointInterval
        options.keepCheckpoints = configuration.keepCheckpoints
        options.maxPendingKeys = configuration.maxPendingKeys
        options.requestRetention = configuration.idempotencyWindow
        options.frameObserver = { metrics.recordFrame($0) }
        options.onCheckpointCommit = { metrics.recordCheckpoint($0) }
        let (logStops, logStopped) = AsyncStream.makeStream(of: LogError.self, bufferingPolicy: .bufferingNewest(1))
        options.onLogStateChange = { change in
            if case .stopped(let error) = change { logStopped.yield(error) }
        }
        let node = try await CountingNode.start(options, sink: PostgresCheckpointSink(client: client), logger: logger)

        let reads = PostgresPool(url: configuration.databaseURL, connections: configuration.readConnections)
        let parts = DaemonParts(node: node, reads: reads, metrics: metrics, configuration: configuration, logger: logger)
        let app = makeApplication(parts, onListening: onListening)
        let counting = CountingService(node: node, migrations: Migrations(client: client),
                                       finalCheckpointTimeout: configuration.shutdownTimeout - .seconds(2), logger: logger)
        // Stopped in reverse order: the drain first, then the fronts, the counting core last.
        let drain = DrainService(signal: parts.drain, drainTime: configuration.drainTime, logger: logger)
        let services = [counting, app] + fronts(parts) + [drain]
        var groupConfiguration = ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = configuration.drainTime + configuration.shutdownTimeout
        let group = ServiceGroup(configuration: groupConfiguration)
        // A log stopped by a disk error takes nothing more until reopened: shut down as on
        // SIGTERM (drain, final checkpoint of what is durable) and exit non-zero, so that a
        // supervisor restarts the daemon, whose start recovers the log.
        let stopWatcher = Task { () -> LogError? in
            for await error in logStops {
                await group.triggerGracefulShutdown()
                return error
            }
            return nil
        }
        try await group.run()
        logStopped.finish()
        if let error = await stopWatcher.value { throw TallyDaemonError.logStopped(error) }
    }
}

/// Why `TallyDaemon.run` ended other than by a signal.
public enum TallyDaemonError: Error, CustomStringConvertible {
    /// The log stopped after a disk error; the daemon drained and checkpointed what it could.
    case logStopped(LogError)

    public var description: String {
        switch self {
        case .logStopped(let error):
            "stopped after a disk error (\(error)); what was durable was checkpointed, the rest is in the log. "
                + "Restart to recover (a supervisor does: see docs/operations.md, \"Disk failures\")"
        }
    }
}

extension TallyDaemon {
    /// The HTTP application alone, with parts of its own (tests drive it with HummingbirdTesting).
    public static func makeApplication(
        node: CountingNode, reads: PostgresPool, metrics: ServerMetrics, configuration: ServerConfiguration,
        logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> Application<RouterResponder<TallyRequestContext>> {
        makeApplication(DaemonParts(node: node, reads: reads, metrics: metrics, configuration: configuration, logger: logger),
                        onListening: onListening)
    }

    /// The HTTP application over the daemon's shared parts.
    public static func makeApplication(
        _ parts: DaemonParts, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> Application<RouterResponder<TallyRequestContext>> {
        let configuration = parts.configuration
        let logger = parts.logger
        let counts = CountRoutes(reader: parts.reader, store: parts.store)
        let names = KeyNameRoute(names: parts.names, maxBodyBytes: configuration.maxBodyBytes)
        let router = TallyRouter.build(node: parts.node, ingest: parts.ingest, metrics: parts.metrics, gate: parts.gate,
                                       intake: parts.intake, counts: counts, names: names, drain: parts.drain,
                                       benchRoutes: configuration.benchRoutes)
        let idleSeconds = max(1, Int64(configuration.idleTimeout.components.seconds))
        let serverName = "tally"
        let increments = IngestChannelHandler.Dependencies(
            ingest: parts.ingest, metrics: parts.metrics, intake: parts.intake, gate: parts.gate, serverName: serverName,
            idleTimeout: .seconds(idleSeconds))
        return Application(
            router: router,
            server: .tally(increments: increments),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: serverName),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.info("listening", metadata: ["address": "\(configuration.host):\(port)"])
                await onListening(port)
            },
            logger: logger
        )
    }
}

/// Migrations, the checkpoint loop and the final checkpoint, as one service.
///
/// Started first and stopped last: the service group stops the HTTP server (and waits for
/// its requests) before this service hears of the shutdown.
struct CountingService: Service {
    let node: CountingNode
    let migrations: Migrations
    let finalCheckpointTimeout: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await migrateWhenReachable()
            await node.run()
        }
        do {
            try await node.shutdown(finalCheckpointTimeout: max(finalCheckpointTimeout, .seconds(1)))
        } catch {
            logger.error("final checkpoint failed; the log keeps every increment for the next start or tally recover",
                         metadata: ["error": "\(error)"])
        }
    }

    /// PostgreSQL may be down at start: the daemon serves anyway and migrates once it can.
    private func migrateWhenReachable() async {
        var backoff = Duration.milliseconds(200)
        var logged = false
        while !Task.isCancelled {
            do {
                let applied = try await migrations.migrate()
                if !applied.isEmpty { logger.notice("schema migrated", metadata: ["versions": "\(applied)"]) }
                return
            } catch {
                if !logged {
                    logger.warning("cannot migrate yet; serving anyway, checkpoints wait", metadata: ["error": "\(error)"])
                    logged = true
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }
}

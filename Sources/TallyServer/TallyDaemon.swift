import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import TallyCore
import TallyIngest
import TallyPostgres

/// `tally serve`: the counting node behind the HTTP API, run as a service group so that
/// SIGTERM/SIGINT stop it in order — the server stops accepting and drains its requests,
/// then the log closes (flushing what is queued) and a final checkpoint runs.
public enum TallyDaemon {
    public static func run(_ configuration: ServerConfiguration, logger: Logger,
                           onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let client = PostgresClient(url: configuration.databaseURL)
        let metrics = ServerMetrics()
        var options = CountingNode.Options(dataDirectory: configuration.dataDirectory)
        options.requestedNodeID = configuration.nodeID
        options.segmentSizeBytes = configuration.segmentSizeBytes
        options.maxLogSizeBytes = configuration.maxLogBytes
        options.checkpointInterval = configuration.checkpointInterval
        options.keepCheckpoints = configuration.keepCheckpoints
        options.requestRetention = configuration.idempotencyWindow
        options.frameObserver = { metrics.recordFrame($0) }
        let node = try await CountingNode.start(options, sink: PostgresCheckpointSink(client: client), logger: logger)

        let reads = PostgresPool(url: configuration.databaseURL, connections: configuration.readConnections)
        let app = makeApplication(node: node, reads: reads, metrics: metrics, configuration: configuration,
                                  logger: logger, onListening: onListening)
        let counting = CountingService(node: node, migrations: Migrations(client: client),
                                       finalCheckpointTimeout: configuration.shutdownTimeout - .seconds(2), logger: logger)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: counting), .init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        try await ServiceGroup(configuration: groupConfiguration).run()
    }
}

extension TallyDaemon {
    /// The HTTP application alone (tests drive it with HummingbirdTesting).
    public static func makeApplication(
        node: CountingNode, reads: PostgresPool, metrics: ServerMetrics, configuration: ServerConfiguration,
        logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> Application<RouterResponder<TallyRequestContext>> {
        let gate = RequestGate(
            keys: configuration.apiKeys,
            limiter: configuration.rateLimitPerSecond.map { RateLimiter(ratePerSecond: $0, burst: configuration.rateBurst) },
            trustedProxies: configuration.trustedProxies, onRateLimited: { metrics.recordRateLimited() })
        let intake = IncrementIntake(maxBodyBytes: configuration.maxBodyBytes, maxBatchBytes: configuration.maxBatchBytes,
                                     maxBatchIncrements: configuration.maxBatchIncrements)
        let store = PostgresCountStore(pool: reads)
        let ingest = Ingest(log: node.log, window: node.requestWindow, lookup: store)
        let counts = CountRoutes(reader: CountReader(persisted: store, compactor: node.compactor, node: node.identity.id),
                                 store: store)
        let router = TallyRouter.build(node: node, ingest: ingest, metrics: metrics, gate: gate, intake: intake,
                                       counts: counts, benchRoutes: configuration.benchRoutes)
        let idleSeconds = max(1, Int64(configuration.idleTimeout.components.seconds))
        let serverName = "tally"
        let increments = IngestChannelHandler.Dependencies(
            ingest: ingest, metrics: metrics, intake: intake, gate: gate, serverName: serverName,
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

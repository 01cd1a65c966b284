import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TallyGRPC
import TallyIngest
import TallyServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the counter daemon.",
        discussion: """
            Every option can also be set by an environment variable, named after it: \
            TALLY_LISTEN, TALLY_GRPC_LISTEN, TALLY_DATA_DIR, TALLY_DATABASE_URL (or plain DATABASE_URL), \
            TALLY_CHECKPOINT_INTERVAL, TALLY_NODE_ID, TALLY_MAX_BODY_BYTES, TALLY_MAX_BATCH_INCREMENTS, \
            TALLY_MAX_BATCH_BYTES, TALLY_IDEMPOTENCY_WINDOW, TALLY_RATE_LIMIT, \
            TALLY_RATE_BURST, TALLY_TRUSTED_PROXY (comma-separated), TALLY_API_KEYS_FILE, \
            TALLY_MAX_LOG_BYTES, TALLY_MAX_PENDING_KEYS, TALLY_KEEP_CHECKPOINTS, TALLY_READ_CONNECTIONS, \
            TALLY_DRAIN_TIME, TALLY_LOG_LEVEL, TALLY_LOG_FORMAT. The command line wins. \
            Durations take ms, s, m or h (9s, 500ms, 1m); sizes take B, KiB, MiB, GiB or KB, MB, GB.

            SIGTERM or SIGINT: answer /readyz with 503 for --drain-time while still taking requests, \
            then stop accepting, finish requests in flight, flush the log, run a final checkpoint, exit 0.
            """
    )

    @Option(help: "Address to listen on, host:port. (TALLY_LISTEN; default 127.0.0.1:8080)")
    var listen: String?

    @Option(name: .customLong("grpc-listen"),
            help: "Also serve the gRPC API (tally.v1.Tally, grpc.health.v1.Health) on host:port. (TALLY_GRPC_LISTEN; off when absent)")
    var grpcListen: String?

    @Option(name: .customLong("data-dir"), help: "Runtime directory: the log (wal/) and the node id. (TALLY_DATA_DIR; default data)")
    var dataDirectory: String?

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL. (TALLY_DATABASE_URL or DATABASE_URL)")
    var databaseURL: String?

    @Option(name: .customLong("checkpoint-interval"),
            help: "How often sums go to PostgreSQL; must stay under 10s for the freshness bound. (default 9s)")
    var checkpointInterval: String?

    @Option(name: .customLong("node-id"), help: "This node's UUID; created and kept in <data-dir>/node-id when absent.")
    var nodeID: String?

    @Option(name: .customLong("max-body-bytes"), help: "Larger request bodies get 413. (default 4KiB)")
    var maxBodyBytes: String?

    @Option(name: .customLong("max-batch-increments"),
            help: "Most increments one POST /increments body may hold; more get 413. (default 10000)")
    var maxBatchIncrements: Int?

    @Option(name: .customLong("max-batch-bytes"), help: "Largest POST /increments body; larger get 413. (default 1MiB)")
    var maxBatchBytes: String?

    @Option(name: .customLong("idempotency-window"),
            help: "How long an Idempotency-Key (gRPC request_id) counts as taken; a retry later than this counts again. (default 24h)")
    var idempotencyWindow: String?

    @Option(name: .customLong("rate-limit"), help: "Requests per second per client; off when absent.")
    var rateLimit: Double?

    @Option(name: .customLong("rate-burst"), help: "Requests a client may send at once before the rate applies. (default 100)")
    var rateBurst: Int?

    @Option(name: .customLong("trusted-proxy"),
            help: "A proxy address whose X-Forwarded-For is believed for rate limiting; repeatable.")
    var trustedProxies: [String] = []

    @Option(name: .customLong("api-keys-file"),
            help: "File of API keys, one per line; when set, every route but /healthz needs Authorization: Bearer <key>.")
    var apiKeysFile: String?

    @Option(name: .customLong("max-log-bytes"),
            help: "Disk budget of the log; past it increments get 503 until PostgreSQL catches up. (default 8GiB)")
    var maxLogBytes: String?

    @Option(name: .customLong("max-pending-keys"),
            help: "Memory bound of the pending sums, in (key, day) entries; past it the log is applied to PostgreSQL in slices. (default 15000000, about 1 GiB)")
    var maxPendingKeys: Int?

    @Option(name: .customLong("keep-checkpoints"),
            help: "Segments stay on disk until this many later checkpoints are confirmed, so a PostgreSQL that loses its last commits can be replayed. (default 2)")
    var keepCheckpoints: Int?

    @Option(name: .customLong("read-connections"),
            help: "PostgreSQL connections, each on a thread of its own, that serve the read routes. (default 4)")
    var readConnections: Int?

    @Option(name: .customLong("drain-time"),
            help: "After SIGTERM, how long /readyz answers 503 while requests are still taken, so that a load balancer moves away before the listener closes; set it above the balancer's health-check interval times its fall count. (TALLY_DRAIN_TIME; default 0s)")
    var drainTime: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. (default info)")
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: "text or json. (default text)")
    var logFormat: String?

    @Flag(name: .customLong("bench-routes"), help: .hidden)
    var benchRoutes = false

    mutating func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        func setting(_ value: String?, _ name: String) -> String? {
            value ?? environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }

        let level = setting(logLevel, "TALLY_LOG_LEVEL") ?? "info"
        guard let parsedLevel = Logger.Level(rawValue: level) else { throw ValidationError("--log-level: unknown level \(level)") }
        let format = setting(logFormat, "TALLY_LOG_FORMAT") ?? "text"
        guard format == "text" || format == "json" else { throw ValidationError("--log-format must be text or json") }
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = parsedLevel
            return handler
        }
        let logger = Logger(label: "tally")

        guard let url = setting(databaseURL, "TALLY_DATABASE_URL") ?? setting(nil, "DATABASE_URL") else {
            throw ValidationError("give --database-url (or set DATABASE_URL)")
        }
        var configuration = ServerConfiguration(databaseURL: url)
        let address = setting(listen, "TALLY_LISTEN") ?? "127.0.0.1:8080"
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ValidationError("--listen must be host:port, got \(address)")
        }
        configuration.host = String(address[..<colon])
        configuration.port = port
        if let grpc = setting(grpcListen, "TALLY_GRPC_LISTEN") {
            guard let colon = grpc.lastIndex(of: ":"), let port = Int(grpc[grpc.index(after: colon)...]),
                  (0...65535).contains(port) else {
                throw ValidationError("--grpc-listen must be host:port, got \(grpc)")
            }
            configuration.grpcHost = String(grpc[..<colon])
            configuration.grpcPort = port
        }
        configuration.dataDirectory = setting(dataDirectory, "TALLY_DATA_DIR") ?? "data"
        if let text = setting(checkpointInterval, "TALLY_CHECKPOINT_INTERVAL") {
            guard let interval = ValueParsing.duration(text), interval > .zero else {
                throw ValidationError("--checkpoint-interval: \(text) is not a duration like 9s or 500ms")
            }
            configuration.checkpointInterval = interval
        }
        if let text = setting(nodeID, "TALLY_NODE_ID") {
            guard let id = UUID(uuidString: text) else { throw ValidationError("--node-id must be a UUID") }
            configuration.nodeID = id
        }
        if let text = setting(maxBodyBytes, "TALLY_MAX_BODY_BYTES") {
            guard let bytes = ValueParsing.byteCount(text), bytes > 0 else { throw ValidationError("--max-body-bytes: \(text)") }
            configuration.maxBodyBytes = bytes
        }
        if let count = maxBatchIncrements ?? environment["TALLY_MAX_BATCH_INCREMENTS"].flatMap(Int.init) {
            // One request is one append, and an append is one frame of the log.
            guard (1...16_384).contains(count) else { throw ValidationError("--max-batch-increments must be 1…16384") }
            configuration.maxBatchIncrements = count
        }
        if let text = setting(maxBatchBytes, "TALLY_MAX_BATCH_BYTES") {
            guard let bytes = ValueParsing.byteCount(text), bytes > 0, bytes <= 64 << 20 else {
                throw ValidationError("--max-batch-bytes: \(text) (at most 64MiB)")
            }
            configuration.maxBatchBytes = bytes
        }
        if let text = setting(idempotencyWindow, "TALLY_IDEMPOTENCY_WINDOW") {
            guard let window = ValueParsing.duration(text), window >= .seconds(1) else {
                throw ValidationError("--idempotency-window: \(text) is not a duration like 24h")
            }
            configuration.idempotencyWindow = window
        }
        if let rate = rateLimit ?? environment["TALLY_RATE_LIMIT"].flatMap(Double.init) {
            guard rate > 0 else { throw ValidationError("--rate-limit must be positive") }
            configuration.rateLimitPerSecond = rate
        }
        if let burst = rateBurst ?? environment["TALLY_RATE_BURST"].flatMap(Int.init) {
            guard burst >= 1 else { throw ValidationError("--rate-burst must be at least 1") }
            configuration.rateBurst = burst
        }
        let proxies = trustedProxies.isEmpty
            ? (environment["TALLY_TRUSTED_PROXY"] ?? "").split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            : trustedProxies
        configuration.trustedProxies = Set(proxies.filter { !$0.isEmpty })
        if let path = setting(apiKeysFile, "TALLY_API_KEYS_FILE") {
            configuration.apiKeys = try APIKeys(contentsOfFile: path)
        }
        if let text = setting(maxLogBytes, "TALLY_MAX_LOG_BYTES") {
            guard let bytes = ValueParsing.byteCount(text), bytes > 0 else { throw ValidationError("--max-log-bytes: \(text)") }
            configuration.maxLogBytes = bytes
        }
        if let keys = maxPendingKeys ?? environment["TALLY_MAX_PENDING_KEYS"].flatMap(Int.init) {
            guard keys >= 1_000 else { throw ValidationError("--max-pending-keys must be at least 1000") }
            configuration.maxPendingKeys = keys
        }
        if let keep = keepCheckpoints ?? environment["TALLY_KEEP_CHECKPOINTS"].flatMap(Int.init) {
            guard (1...100).contains(keep) else { throw ValidationError("--keep-checkpoints must be 1…100") }
            configuration.keepCheckpoints = keep
        }
        if let connections = readConnections ?? environment["TALLY_READ_CONNECTIONS"].flatMap(Int.init) {
            guard (1...64).contains(connections) else { throw ValidationError("--read-connections must be 1…64") }
            configuration.readConnections = connections
        }
        if let text = setting(drainTime, "TALLY_DRAIN_TIME") {
            guard let drain = ValueParsing.duration(text), drain <= .seconds(60) else {
                throw ValidationError("--drain-time: \(text) is not a duration from 0s to 60s")
            }
            configuration.drainTime = drain
        }
        configuration.benchRoutes = benchRoutes
        Self.raiseDescriptorLimit(logger: logger)
        try await TallyDaemon.run(configuration, logger: logger, fronts: Self.grpcFront)
    }

    /// The gRPC front over the daemon's shared parts, when `--grpc-listen` asks for one.
    @Sendable private static func grpcFront(_ parts: DaemonParts) -> [any Service] {
        guard let host = parts.configuration.grpcHost else { return [] }
        var configuration = GRPCFront.Configuration(host: host, port: parts.configuration.grpcPort)
        configuration.maxBatchIncrements = parts.configuration.maxBatchIncrements
        let metrics = parts.metrics
        return [GRPCFront(configuration: configuration, ingest: parts.ingest, reader: parts.reader, gate: parts.gate,
                          isReady: { parts.isReady }, arrivalClock: parts.arrivalClock,
                          onAcknowledged: { _, duration in metrics.recordAcknowledged(after: duration) },
                          logger: parts.logger)]
    }

    /// Every client connection is a descriptor; the default soft limit (often 1024) is far
    /// below what a server is allowed (the hard limit), so take what is allowed.
    private static func raiseDescriptorLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let previous = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.debug("raised the open file limit", metadata: ["from": "\(previous)", "to": "\(limit.rlim_cur)"])
        }
    }
}

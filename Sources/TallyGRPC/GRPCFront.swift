import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import ServiceLifecycle
import TallyCore
import TallyIngest
import TallyLog

/// The gRPC front: `tally.v1.Tally` and `grpc.health.v1.Health` on `--grpc-listen`, as a
/// service of the daemon's service group (started after the counting core, stopped before
/// it: in-flight streams finish before the final checkpoint).
public struct GRPCFront: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var maxBatchIncrements = 10_000
        /// The largest request message (the protobuf form of a request of
        /// `maxBatchIncrements` increments is well under the default 4 MiB).
        public var maxRequestBytes = 4 << 20
        public var streamWindow = 64

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let logger: Logger
    private let onListening: @Sendable (Int) async -> Void

    /// - Parameters:
    ///   - onAcknowledged: told of each acked request (increments, time to its ack).
    public init(configuration: Configuration, ingest: Ingest, reader: CountReader, gate: RequestGate,
                isReady: @escaping @Sendable () -> Bool, arrivalClock: @escaping @Sendable () -> Int64,
                onAcknowledged: @escaping @Sendable (Int, Duration) -> Void, logger: Logger,
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        let tally = TallyService(.init(
            ingest: ingest, reader: reader, gate: gate,
            intake: IncrementRequestIntake(maxIncrements: configuration.maxBatchIncrements, clock: arrivalClock),
            streamWindow: configuration.streamWindow, onAcknowledged: onAcknowledged))
        let maxRequestBytes = configuration.maxRequestBytes
        server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: configuration.host, port: configuration.port),
                transportSecurity: .plaintext,
                config: .defaults { $0.rpc.maxRequestPayloadSize = maxRequestBytes }),
            services: [tally, HealthService(isReady: isReady)])
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withGracefulShutdownHandler {
                    try await server.serve()
                } onGracefulShutdown: {
                    server.beginGracefulShutdown()  // stop accepting; in-flight calls finish
                }
            }
            if let address = try await server.listeningAddress?.ipv4 {
                logger.info("gRPC listening", metadata: ["address": "\(address.host):\(address.port)"])
                await onListening(address.port)
            }
            try await group.waitForAll()
        }
    }
}

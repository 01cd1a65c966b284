import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import ServiceLifecycle
import Synchronization
import TallyCore
import TallyGRPC
import TallyIngest
import TallyLog
import TallyPostgres
import TallyProtos

enum TestDatabase {
    static var url: String {
        guard let url = ProcessInfo.processInfo.environment["TALLY_TEST_DATABASE_URL"], !url.isEmpty else {
            fatalError("TALLY_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL")
        }
        return url
    }
}

final class TemporaryDirectory: Sendable {
    let path: String
    init() {
        var template = Array((NSTemporaryDirectory() + "tally-grpc-XXXXXX").utf8CString)
        path = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A real node (log on disk, PostgreSQL) behind a real gRPC server on a free port, and a
/// client connected to it. `run` starts both, runs the body, stops both.
struct GRPCHarness {
    let directory = TemporaryDirectory()
    let node: CountingNode
    let gate: RequestGate
    var maxBatchIncrements = 100
    var streamWindow = 8

    init(gate: RequestGate = RequestGate(keys: nil, limiter: nil, trustedProxies: []),
         logFaults: LogFaults? = nil) async throws {
        let client = PostgresClient(url: TestDatabase.url)
        try await Migrations(client: client).migrate()
        var options = CountingNode.Options(dataDirectory: directory.path)
        options.logFaults = logFaults
        node = try await CountingNode.start(options, sink: PostgresCheckpointSink(client: client), logger: Logger(label: "test"))
        try await node.checkpointer.checkpoint()
        self.gate = gate
    }

    func run<T: Sendable>(_ body: @Sendable (Tally_V1_Tally.Client<HTTP2ClientTransport.Posix>,
                                             Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>) async throws -> T)
        async throws -> T
    {
        let store = PostgresCountStore(pool: PostgresPool(url: TestDatabase.url, connections: 2))
        var configuration = GRPCFront.Configuration(host: "127.0.0.1", port: 0)
        configuration.maxBatchIncrements = maxBatchIncrements
        configuration.streamWindow = streamWindow
        let port = OneShotPort()
        let node = self.node
        let front = GRPCFront(
            configuration: configuration, ingest: Ingest(log: node.log, window: node.requestWindow, lookup: store),
            reader: CountReader(persisted: store, compactor: node.compactor, node: node.identity.id), gate: gate,
            isReady: { node.log.acceptsAppends }, arrivalClock: RequestWindow.nowMillis,
            onAcknowledged: { _, _ in }, logger: Logger(label: "test"), onListening: { port.set($0) })
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await front.run()
                return nil
            }
            let bound = await port.value
            let result = try await withGRPCClient(
                transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: bound), transportSecurity: .plaintext)
            ) { client in
                try await body(Tally_V1_Tally.Client(wrapping: client), Grpc_Health_V1_Health.Client(wrapping: client))
            }
            group.cancelAll()
            return result
        }
    }

    /// Every record in the node's log.
    func loggedRecords() throws -> [LogRecord] {
        var records: [LogRecord] = []
        try LogReader(directory: directory.path + "/wal").forEachRecord { records.append($1) }
        return records
    }
}

final class OneShotPort: Sendable {
    private let port = Mutex<(Int?, [CheckedContinuation<Int, Never>])>((nil, []))
    func set(_ value: Int) {
        let waiters = port.withLock { state -> [CheckedContinuation<Int, Never>] in
            state.0 = value
            defer { state.1 = [] }
            return state.1
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }
    var value: Int {
        get async {
            await withCheckedContinuation { continuation in
                let ready = port.withLock { state -> Int? in
                    if let value = state.0 { return value }
                    state.1.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

func increments(_ values: [Int64], key: String) -> Tally_V1_IncrementRequest {
    .with { request in request.increments = values.map { value in .with { $0.key = key; $0.value = value } } }
}

/// What one Increment stream heard: its acks and the status that ended it (nil: OK).
struct StreamOutcome: Sendable {
    var acks: [Tally_V1_IncrementAck] = []
    var error: RPCError?
}

/// Sends `requests` on one stream (all at once, without waiting for acks) and collects the
/// acks and the final status.
func stream(_ tally: Tally_V1_Tally.Client<HTTP2ClientTransport.Posix>, _ requests: [Tally_V1_IncrementRequest],
            metadata: Metadata = [:]) async throws -> StreamOutcome {
    try await tally.increment(metadata: metadata) { writer in
        for request in requests { try await writer.write(request) }
    } onResponse: { response in
        var outcome = StreamOutcome()
        do {
            for try await ack in response.messages { outcome.acks.append(ack) }
        } catch let error as RPCError {
            outcome.error = error
        }
        return outcome
    }
}

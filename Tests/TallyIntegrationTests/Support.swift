import Foundation
import Logging
import TallyCore
import TallyLog
import TallyPostgres

enum TestDatabase {
    static var url: String {
        guard let url = ProcessInfo.processInfo.environment["TALLY_TEST_DATABASE_URL"], !url.isEmpty else {
            fatalError("TALLY_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL")
        }
        return url
    }

    static func migratedClient(url: String = TestDatabase.url) async throws -> PostgresClient {
        let client = PostgresClient(url: url)
        try await Migrations(client: client).migrate()
        return client
    }

    /// Totals of `keys` (0 for a key without a row), as exact integers.
    static func totals(_ keys: some Collection<LogKey>, client: PostgresClient) async throws -> [LogKey: Int128] {
        let array = "{" + keys.map(\.uuidString).joined(separator: ",") + "}"
        return try await client.withConnection { connection in
            let rows = try connection.execute("SELECT key, total FROM tally_counts WHERE key = ANY($1::uuid[])", [array])
            var totals: [LogKey: Int128] = [:]
            for row in 0..<rows.rowCount {
                totals[LogKey(UUID(uuidString: rows.value(row: row, column: 0)!)!)] = Int128(rows.value(row: row, column: 1)!)!
            }
            return totals
        }
    }
}

final class TemporaryDirectory {
    let path: String
    init() {
        var template = Array((NSTemporaryDirectory() + "tally-it-XXXXXX").utf8CString)
        path = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Increments with keys from a fixed random pool (so keys overlap) and random values.
struct Workload {
    let keys: [LogKey]
    var generator = SystemRandomNumberGenerator()
    private(set) var expected: [LogKey: Int128] = [:]

    init(keyCount: Int) {
        keys = (0..<keyCount).map { _ in LogKey(UUID()) }
    }

    mutating func next(_ count: Int) -> [LogRecord] {
        (0..<count).map { _ in
            let record = LogRecord(key: keys.randomElement(using: &generator)!,
                                   value: Int64.random(in: 1...1_000_000_000, using: &generator), arrivalMillis: 0)
            return record
        }
    }

    /// Counts `records` as acknowledged.
    mutating func acknowledge(_ records: [LogRecord]) {
        for record in records { expected[record.key, default: 0] += Int128(record.value) }
    }
}

/// Wraps the real sink to inject the failures a network causes around COMMIT.
final class FaultySink: CheckpointSink {
    enum Fault: Sendable { case none, failBeforeCommit, commitThenLoseConnection, loseConnectionBeforeCommit }
    let real: PostgresCheckpointSink
    private let fault: LockedFault

    init(real: PostgresCheckpointSink) {
        self.real = real
        fault = LockedFault()
    }

    func set(_ newFault: Fault) { fault.set(newFault) }

    func checkpointLSN(node: UUID) async throws -> LSN {
        try await real.checkpointLSN(node: node)
    }

    func knownRequests(_ ids: [String]) async throws -> Set<String> {
        try await real.knownRequests(ids)
    }

    func pruneRequests(node: UUID, takenBeforeMillis beforeMillis: Int64, limit: Int) async throws -> Int {
        try await real.pruneRequests(node: node, takenBeforeMillis: beforeMillis, limit: limit)
    }

    func apply(_ batch: CheckpointBatch) async throws {
        switch fault.get() {
        case .none:
            try await real.apply(batch)
        case .failBeforeCommit:
            throw PostgresError(sqlState: "57P01", message: "injected: terminated before COMMIT", connectionBroken: true)
        case .loseConnectionBeforeCommit:
            throw CheckpointSinkError.outcomeUnknown(reason: "injected: lost before COMMIT")
        case .commitThenLoseConnection:
            try await real.apply(batch)
            throw CheckpointSinkError.outcomeUnknown(reason: "injected: lost after COMMIT")
        }
    }
}

final class LockedFault: @unchecked Sendable {
    private let lock = NSLock()
    private var value: FaultySink.Fault = .none
    func set(_ fault: FaultySink.Fault) { lock.withLock { value = fault } }
    func get() -> FaultySink.Fault { lock.withLock { value } }
}

func startNode(_ dataDirectory: String, sink: any CheckpointSink, segmentSizeBytes: Int = 64 << 20) async throws -> CountingNode {
    var options = CountingNode.Options(dataDirectory: dataDirectory)
    options.segmentSizeBytes = segmentSizeBytes
    return try await CountingNode.start(options, sink: sink, logger: Logger(label: "test"))
}

/// The repository root, for scripts/pg-cluster.sh.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Runs a shell command and returns its status and combined output. It uses system(3) with
/// the output in a file rather than Foundation's Process with pipes: a PostgreSQL server
/// started by the command inherits and keeps open whatever descriptors it is given.
@discardableResult
func shell(_ command: String) throws -> (status: Int32, output: String) {
    let outputPath = NSTemporaryDirectory() + "tally-shell-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    let status = system("(\(command)) > \(outputPath) 2>&1 < /dev/null")
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    let exitStatus = (status >> 8) & 0xFF
    return (Int32(exitStatus), output)
}

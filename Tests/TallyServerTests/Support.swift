import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import TallyCore
import TallyLog
import TallyPostgres
@testable import TallyServer

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
        var template = Array((NSTemporaryDirectory() + "tally-server-XXXXXX").utf8CString)
        path = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A real node (log on disk, PostgreSQL sink) behind the real router.
struct TestServer {
    let directory = TemporaryDirectory()
    let node: CountingNode
    let metrics = ServerMetrics()
    let app: Application<RouterResponder<TallyRequestContext>>

    /// - Parameter slowDiskMicroseconds: added to every frame's fdatasync (acknowledgements
    ///   wait for it), so that anything answered without waiting for the log would overtake.
    /// - Parameter readsURL: where the read routes' pool connects (the test database by default).
    init(slowDiskMicroseconds: UInt32 = 0, logFaults: LogFaults? = nil, readsURL: String = TestDatabase.url,
         _ configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
        var configuration = ServerConfiguration(databaseURL: TestDatabase.url)
        configuration.port = 0
        configure(&configuration)
        let client = PostgresClient(url: TestDatabase.url)
        try await Migrations(client: client).migrate()
        var options = CountingNode.Options(dataDirectory: directory.path)
        let metrics = self.metrics
        options.frameObserver = { frame in
            if slowDiskMicroseconds > 0 { usleep(slowDiskMicroseconds) }
            metrics.recordFrame(frame)
        }
        options.maxLogSizeBytes = configuration.maxLogBytes
        options.logFaults = logFaults
        node = try await CountingNode.start(options, sink: PostgresCheckpointSink(client: client), logger: Logger(label: "test"))
        app = TallyDaemon.makeApplication(node: node, reads: PostgresPool(url: readsURL, connections: 2), metrics: metrics,
                                          configuration: configuration, logger: Logger(label: "test"))
    }

    /// Every record in the node's log.
    func loggedRecords() throws -> [LogRecord] {
        var records: [LogRecord] = []
        try LogReader(directory: directory.path + "/wal").forEachRecord { records.append($1) }
        return records
    }
}

func incrementBody(_ key: String, _ value: Int64) -> ByteBuffer {
    ByteBuffer(string: #"{"key":"\#(key)","value":\#(value)}"#)
}

func json(_ buffer: ByteBuffer) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
}

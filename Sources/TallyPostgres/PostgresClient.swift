import Synchronization
import TallyCore

/// A connection on a thread of its own, for async callers.
///
/// libpq calls block, so they run on the client's dedicated thread, never on the cooperative
/// pool or an event loop. The connection is made on first use and dropped when an error
/// leaves it broken; the next call reconnects. Calls run one at a time, in order.
public final class PostgresClient: Sendable {
    public let url: String
    private let settings: [ConnectionSetting]
    private let executor: BlockingExecutor
    private let slot = ConnectionSlot()

    /// A libpq keyword and value (see `PostgresConnection.init(url:settings:)`).
    public struct ConnectionSetting: Sendable {
        public var keyword: String
        public var value: String
        public init(_ keyword: String, _ value: String) {
            self.keyword = keyword
            self.value = value
        }
    }

    /// - Parameter maxQueuedCalls: calls waiting for the connection beyond the one running;
    ///   past it a call fails at once (`BlockingExecutorError.unavailable`).
    public init(url: String, name: String = "tally-postgres", settings: [ConnectionSetting] = [],
                maxQueuedCalls: Int = 64) {
        self.url = url
        self.settings = settings
        executor = BlockingExecutor(name: name, maxQueuedJobs: maxQueuedCalls)
    }

    deinit {
        executor.shutdown()
    }

    /// Runs `body` with the connection on the client's thread.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await executor.run { [slot, url, settings] in
            let connection = try slot.connection(url: url, settings: settings)
            do {
                return try body(connection)
            } catch {
                if !connection.isHealthy { slot.drop() }
                throw error
            }
        }
    }

    /// Closes the connection (the next call reconnects).
    public func disconnect() async {
        _ = try? await executor.run { [slot] in slot.drop() }
    }
}

/// Holds the connection; touched only from the client's executor thread, so the mutex is
/// never contended — it only satisfies Sendable honestly.
private final class ConnectionSlot: Sendable {
    private let current = Mutex<PostgresConnectionBox?>(nil)

    func connection(url: String, settings: [PostgresClient.ConnectionSetting]) throws -> PostgresConnection {
        if let box = current.withLock({ $0 }), box.connection.isHealthy { return box.connection }
        let fresh = try PostgresConnection(url: url, settings: settings.map { ($0.keyword, $0.value) })
        current.withLock { $0 = PostgresConnectionBox(connection: fresh) }
        return fresh
    }

    func drop() {
        current.withLock { $0 = nil }
    }
}

private final class PostgresConnectionBox: @unchecked Sendable {
    let connection: PostgresConnection
    init(connection: PostgresConnection) { self.connection = connection }
}

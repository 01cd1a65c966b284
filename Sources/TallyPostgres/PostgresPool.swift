import Synchronization
import TallyCore

/// A bounded pool of PostgreSQL connections for reads, each on a thread of its own.
///
/// Reads must never cost increments anything but CPU: they run on the pool's threads (not
/// the event loops, not the cooperative pool), at most `connections` at a time, with at
/// most `maxQueuedPerConnection` waiting behind each; past that a read fails at once with
/// `PostgresPoolError.busy`, so a flood of readers costs bounded memory. When a connection
/// cannot be made, reads fail fast with `.unavailable` for `pauseAfterFailure` instead of
/// each waiting out a connect timeout, and every statement has a timeout of its own.
public final class PostgresPool: Sendable {
    private let clients: [PostgresClient]
    /// Calls running or queued on each connection.
    private let inFlight: Mutex<[Int]>
    private let maxQueuedPerConnection: Int
    private let pauseAfterFailure: Duration
    /// Until when reads fail fast after a connection failure.
    private let pausedUntil = Mutex<ContinuousClock.Instant?>(nil)
    private let next = Atomic(0)

    public init(url: String, connections: Int = 4, maxQueuedPerConnection: Int = 32,
                statementTimeout: Duration = .seconds(5), pauseAfterFailure: Duration = .seconds(1)) {
        precondition(connections >= 1 && maxQueuedPerConnection >= 0, "a pool has at least one connection")
        let milliseconds = statementTimeout.components.seconds * 1_000
            + statementTimeout.components.attoseconds / 1_000_000_000_000_000
        let settings = [
            PostgresClient.ConnectionSetting("connect_timeout", "2"),
            PostgresClient.ConnectionSetting("application_name", "tally-reads"),
            PostgresClient.ConnectionSetting(
                "options", "-c statement_timeout=\(milliseconds) -c default_transaction_read_only=on"),
        ]
        clients = (0..<connections).map { index in
            PostgresClient(url: url, name: "tally-read-\(index)", settings: settings, maxQueuedCalls: maxQueuedPerConnection)
        }
        inFlight = Mutex(Array(repeating: 0, count: connections))
        self.maxQueuedPerConnection = maxQueuedPerConnection
        self.pauseAfterFailure = pauseAfterFailure
    }

    /// Runs `body` on the least busy connection.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        if let until = pausedUntil.withLock({ $0 }), ContinuousClock.now < until {
            throw PostgresPoolError.unavailable(reason: "PostgreSQL could not be reached a moment ago")
        }
        guard let index = reserve() else { throw PostgresPoolError.busy }
        defer { inFlight.withLock { $0[index] -= 1 } }
        do {
            return try await clients[index].withConnection(body)
        } catch is BlockingExecutorError {
            throw PostgresPoolError.busy
        } catch let error as PostgresError {
            if error.connectionBroken {
                pausedUntil.withLock { $0 = ContinuousClock.now + pauseAfterFailure }
                throw PostgresPoolError.unavailable(reason: error.description)
            }
            if error.sqlState == "57014" { throw PostgresPoolError.unavailable(reason: "the read timed out") }
            throw error
        }
    }

    /// Takes a place on the connection with the fewest calls in flight (ties spread by a
    /// rotating start), nil when every connection's queue is full.
    private func reserve() -> Int? {
        let start = next.add(1, ordering: .relaxed).newValue
        return inFlight.withLock { counts in
            var best = start % counts.count
            for offset in 1..<max(1, counts.count) {
                let candidate = (start + offset) % counts.count
                if counts[candidate] < counts[best] { best = candidate }
            }
            guard counts[best] <= maxQueuedPerConnection else { return nil }
            counts[best] += 1
            return best
        }
    }

    public func disconnect() async {
        for client in clients { await client.disconnect() }
    }
}

public enum PostgresPoolError: Error, CustomStringConvertible, Sendable {
    /// Every connection has its queue full: come back shortly.
    case busy
    /// PostgreSQL cannot answer now (down, unreachable, or too slow).
    case unavailable(reason: String)

    public var description: String {
        switch self {
        case .busy: "too many reads are waiting for PostgreSQL"
        case .unavailable(let reason): "PostgreSQL cannot answer now: \(reason)"
        }
    }
}

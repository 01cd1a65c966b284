import TallyCore
import TallyLog

/// Names of keys (`tally_key_names`), written by `PUT /keys/{key}` and read by the daily
/// report. One upsert per call: registering the same name again changes nothing (not even
/// `updated_at`), a new name replaces the old one.
public struct PostgresKeyNames: Sendable {
    /// As the table's CHECK constraint: `length(name) BETWEEN 1 AND 200` (characters).
    public static let maxNameCharacters = 200

    public let connections: any PostgresConnectionSource

    public init(connections: any PostgresConnectionSource) {
        self.connections = connections
    }

    /// A client of its own for the daemon's name writes: one connection, made on first use,
    /// with a statement timeout, so a slow PostgreSQL holds a name request for seconds at most.
    public static func daemonClient(url: String) -> PostgresClient {
        PostgresClient(url: url, name: "tally-names", settings: [
            PostgresClient.ConnectionSetting("connect_timeout", "2"),
            PostgresClient.ConnectionSetting("application_name", "tally-names"),
            PostgresClient.ConnectionSetting("options", "-c statement_timeout=5000"),
        ], maxQueuedCalls: 32)
    }

    public func register(name: String, for key: LogKey) async throws {
        let parameters = [key.uuidString, name]
        try await connections.withConnection { connection in
            _ = try connection.execute("""
                INSERT INTO \(TableNames.keyNames) (key, name, updated_at) VALUES ($1::uuid, $2, now())
                ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name, updated_at = EXCLUDED.updated_at
                WHERE \(TableNames.keyNames).name IS DISTINCT FROM EXCLUDED.name
                """, parameters)
        }
    }

    /// The name of `key`, nil when none is registered.
    public func name(of key: LogKey) async throws -> String? {
        let parameters = [key.uuidString]
        return try await connections.withConnection { connection in
            let rows = try connection.execute("SELECT name FROM \(TableNames.keyNames) WHERE key = $1::uuid", parameters)
            return rows.rowCount == 1 ? rows.value(row: 0, column: 0) : nil
        }
    }
}

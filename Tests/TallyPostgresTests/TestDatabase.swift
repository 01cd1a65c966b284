import Foundation
import TallyLog
import TallyPostgres

/// The real PostgreSQL that `make test` starts (scripts/with-test-postgres.sh).
enum TestDatabase {
    static var url: String {
        guard let url = ProcessInfo.processInfo.environment["TALLY_TEST_DATABASE_URL"], !url.isEmpty else {
            fatalError("TALLY_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL")
        }
        return url
    }

    /// A migrated client. Tests share the database, so each uses random keys and node ids.
    static func client() async throws -> PostgresClient {
        let client = PostgresClient(url: url)
        try await Migrations(client: client).migrate()
        return client
    }

    static func randomKeys(_ count: Int) -> [LogKey] {
        (0..<count).map { _ in LogKey(UUID()) }
    }

    /// Totals of `keys` as PostgreSQL prints `numeric` (nil for a key without a row).
    static func totals(_ keys: [LogKey], client: PostgresClient) async throws -> [LogKey: String] {
        let array = "{" + keys.map(\.uuidString).joined(separator: ",") + "}"
        return try await client.withConnection { connection in
            let rows = try connection.execute("SELECT key, total FROM tally_counts WHERE key = ANY($1::uuid[])", [array])
            var totals: [LogKey: String] = [:]
            for row in 0..<rows.rowCount {
                totals[LogKey(UUID(uuidString: rows.value(row: row, column: 0)!)!)] = rows.value(row: row, column: 1)!
            }
            return totals
        }
    }
}

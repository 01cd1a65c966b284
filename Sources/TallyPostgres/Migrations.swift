/// The schema, as numbered migrations applied once each and recorded in
/// `tally_schema_migrations`. `tally migrate`, `serve` and `recover` all run them; running
/// them again, or from two nodes at once, applies nothing twice (an advisory lock serialises
/// concurrent runs, and each version is checked inside the same transaction).
public struct Migrations: Sendable {
    public struct Migration: Sendable {
        public var version: Int
        public var description: String
        public var statements: [String]
    }

    /// Append-only: a released migration is never edited, a change is a new version.
    public static let all: [Migration] = [
        Migration(version: 1, description: "counts and per-node checkpoints", statements: [
            """
            CREATE TABLE IF NOT EXISTS \(TableNames.counts) (
                key uuid PRIMARY KEY,
                total numeric NOT NULL,
                updated_at timestamptz NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS \(TableNames.checkpoints) (
                node uuid PRIMARY KEY,
                lsn bigint NOT NULL CHECK (lsn >= 0),
                updated_at timestamptz NOT NULL
            )
            """,
        ]),
        Migration(version: 2, description: "daily totals, undated totals counted before them, key names", statements: [
            """
            CREATE TABLE IF NOT EXISTS \(TableNames.daily) (
                key uuid NOT NULL,
                day date NOT NULL,
                total numeric NOT NULL,
                PRIMARY KEY (key, day)
            )
            """,
            // The daily report reads one day in key order.
            "CREATE INDEX IF NOT EXISTS tally_daily_by_day ON \(TableNames.daily) (day, key)",
            // What was counted before daily totals existed has no day: it stays in `total`
            // and is recorded here, so that for every key total = undated + sum of its days.
            "ALTER TABLE \(TableNames.counts) ADD COLUMN IF NOT EXISTS undated numeric NOT NULL DEFAULT 0",
            "UPDATE \(TableNames.counts) SET undated = total",
            """
            CREATE TABLE IF NOT EXISTS \(TableNames.keyNames) (
                key uuid PRIMARY KEY,
                name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
                updated_at timestamptz NOT NULL
            )
            """,
        ]),
        Migration(version: 3, description: "request ids of idempotent ingest", statements: [
            """
            CREATE TABLE IF NOT EXISTS \(TableNames.requests) (
                id text PRIMARY KEY,
                node uuid NOT NULL,
                first_lsn bigint NOT NULL,
                count int NOT NULL CHECK (count >= 1),
                digest bigint NOT NULL,
                at timestamptz NOT NULL
            )
            """,
            // Each node prunes its own expired rows in bounded deletes.
            "CREATE INDEX IF NOT EXISTS tally_requests_by_node_at ON \(TableNames.requests) (node, at)",
        ]),
    ]

    /// Arbitrary, fixed: the key of the advisory lock that serialises migrations.
    static let advisoryLockKey = "7411720002"

    private let client: PostgresClient

    public init(client: PostgresClient) {
        self.client = client
    }

    /// Applies the migrations this database lacks; returns the versions applied now.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await client.withConnection { connection in
            try connection.execute("BEGIN")
            do {
                try connection.execute("SELECT pg_advisory_xact_lock($1::bigint)", [Self.advisoryLockKey])
                try connection.execute("""
                    CREATE TABLE IF NOT EXISTS \(TableNames.migrations) (
                        version int PRIMARY KEY,
                        applied_at timestamptz NOT NULL,
                        description text NOT NULL
                    )
                    """)
                let rows = try connection.execute("SELECT version FROM \(TableNames.migrations)")
                let present = Set((0..<rows.rowCount).compactMap { rows.value(row: $0, column: 0).flatMap(Int.init) })
                var applied: [Int] = []
                for migration in Self.all where !present.contains(migration.version) {
                    for statement in migration.statements { try connection.execute(statement) }
                    try connection.execute(
                        "INSERT INTO \(TableNames.migrations) (version, applied_at, description) VALUES ($1, now(), $2)",
                        [String(migration.version), migration.description])
                    applied.append(migration.version)
                }
                try connection.execute("COMMIT")
                return applied
            } catch {
                if connection.isHealthy { _ = try? connection.execute("ROLLBACK") }
                throw error
            }
        }
    }
}

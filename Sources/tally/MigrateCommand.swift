import ArgumentParser
import TallyPostgres

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or upgrade Tally's tables in PostgreSQL.",
        discussion: """
            Applies the numbered migrations the database lacks and records them in \
            tally_schema_migrations. Safe to run again and from several nodes at once. \
            `tally serve` and `tally recover` run it themselves.
            """
    )

    @OptionGroup var database: DatabaseOptions

    mutating func run() async throws {
        let client = PostgresClient(url: try database.resolvedURL())
        let applied = try await Migrations(client: client).migrate()
        let latest = Migrations.all.map(\.version).max() ?? 0
        if applied.isEmpty {
            print("schema is up to date (version \(latest))")
        } else {
            print("applied migrations \(applied.map(String.init).joined(separator: ", ")); schema is at version \(latest)")
        }
    }
}

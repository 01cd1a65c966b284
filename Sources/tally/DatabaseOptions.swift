import ArgumentParser
import Foundation

/// `--database-url`, falling back to the `DATABASE_URL` environment variable.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"),
            help: "PostgreSQL URL, e.g. postgresql://user@127.0.0.1:5432/db (default: $DATABASE_URL).")
    var databaseURL: String?

    func resolvedURL() throws -> String {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        if let fromEnvironment = ProcessInfo.processInfo.environment["DATABASE_URL"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        throw ValidationError("give --database-url or set DATABASE_URL")
    }
}

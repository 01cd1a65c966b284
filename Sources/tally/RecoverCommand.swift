import ArgumentParser
import TallyCore
import TallyLog
import TallyPostgres

struct RecoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Apply a stopped node's log to PostgreSQL, offline.",
        discussion: """
            For a node that will not run again, or whose log the daemon refuses. Takes the \
            data directory's lock (fails if a daemon runs on it), migrates, cuts a torn tail \
            (keeping a .broken copy), applies every record after the node's checkpoint LSN with \
            the same compare-and-set as a checkpoint, deletes the applied segments (never the \
            last) and prints a summary. With corruption it applies the sound prefix only and \
            keeps everything from the first problem on (exit status 2). Running it twice applies \
            nothing the second time. --dry-run changes nothing: no cut, no migration, no write.
            """
    )

    @Argument(help: "The node's data directory (the daemon's --data-dir), or its wal directory.")
    var dataDirectory: String

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Print what would be applied and change nothing.")
    var dryRun = false

    mutating func run() async throws {
        guard let wal = LogLocation.segmentDirectory(for: dataDirectory) else {
            throw ToolError("no log segments (*\(SegmentName.suffix)) found in or below \(dataDirectory)")
        }
        let client = PostgresClient(url: try database.resolvedURL())
        if !dryRun { try await Migrations(client: client).migrate() }
        let report = try await Recovery(walDirectory: wal, sink: PostgresCheckpointSink(client: client),
                                        dryRun: dryRun).run()
        print(summary(report, wal: wal))
        if !report.unrecoverable.isEmpty { throw ExitCode(2) }
    }

    private func summary(_ report: RecoveryReport, wal: String) -> String {
        let verb = report.dryRun ? "would apply" : "applied"
        var lines = ["log: \(wal)"]
        if let node = report.node { lines.append("node: \(node.uuidString.lowercased())") }
        if report.tornTailBytes > 0 {
            let backup = report.tornTailBackup.map { " (saved in \($0))" } ?? ""
            lines.append("torn tail: \(report.dryRun ? "would cut" : "cut") \(report.tornTailBytes) bytes\(backup)")
        }
        lines.append("checkpoint LSN before: \(report.checkpointLSNBefore)")
        if let range = report.appliedLSNs {
            lines.append("\(verb): \(report.records) records, \(report.keys) keys, LSN \(range.lowerBound)-\(range.upperBound)")
        } else {
            lines.append("\(verb): nothing (PostgreSQL already holds everything in the log)")
        }
        if !report.dryRun {
            lines.append("checkpoint LSN after: \(report.checkpointLSNAfter)")
            lines.append("deleted segments: \(report.deletedSegments.isEmpty ? "none" : report.deletedSegments.joined(separator: " "))")
        }
        for problem in report.unrecoverable {
            lines.append("NOT APPLIED, needs an operator: \(problem)")
        }
        return lines.joined(separator: "\n")
    }
}

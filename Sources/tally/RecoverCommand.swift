import Foundation
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

            It refuses a log that does not fit the node's checkpoint, as the daemon does, and \
            offers the two ways out: --accept-gap when the checkpoint is older than the first \
            record on disk (PostgreSQL lost commits whose segments are gone; the totals will miss \
            them), and --salvage-from LSN --as-node UUID to apply this log's records from LSN on \
            under a new node id (when PostgreSQL credits this log's id with more than the log \
            holds, e.g. two data directories shared one id). See docs/operations.md.
            """
    )

    @Argument(help: "The node's data directory (the daemon's --data-dir), or its wal directory.")
    var dataDirectory: String

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Print what would be applied and change nothing.")
    var dryRun = false

    @Flag(name: .customLong("accept-gap"),
          help: "When the checkpoint is older than the first record on disk, apply what is on disk and accept that the records in between are lost.")
    var acceptGap = false

    @Option(name: .customLong("salvage-from"), help: "Apply the records from this LSN on under --as-node instead of the log's own node id.")
    var salvageFrom: UInt64?

    @Option(name: .customLong("as-node"), help: "A new, unused node id for --salvage-from.")
    var asNode: String?

    @Option(name: .customLong("max-pending-keys"),
            help: "Memory bound: each transaction applies at most this many (key, day) rows; a larger log is applied in slices. (default 15000000, about 1 GiB)")
    var maxPendingKeys: Int?

    mutating func run() async throws {
        guard let wal = LogLocation.segmentDirectory(for: dataDirectory) else {
            throw ToolError("no log segments (*\(SegmentName.suffix)) found in or below \(dataDirectory)")
        }
        var salvage: Recovery.Salvage?
        switch (salvageFrom, asNode) {
        case (nil, nil): break
        case (let from?, let node?):
            guard let id = UUID(uuidString: node) else { throw ValidationError("--as-node must be a UUID") }
            guard from >= 1 else { throw ValidationError("--salvage-from must be an LSN ≥ 1") }
            salvage = Recovery.Salvage(fromLSN: from, node: id)
        default:
            throw ValidationError("--salvage-from and --as-node go together")
        }
        if salvage != nil && acceptGap { throw ValidationError("--salvage-from and --accept-gap exclude each other") }
        let client = PostgresClient(url: try database.resolvedURL())
        if !dryRun { try await Migrations(client: client).migrate() }
        var recovery = Recovery(walDirectory: wal, sink: PostgresCheckpointSink(client: client), dryRun: dryRun,
                                fence: try Self.fence(besideLog: wal))
        recovery.acceptGap = acceptGap
        recovery.salvage = salvage
        if let maxPendingKeys {
            guard maxPendingKeys >= 1_000 else { throw ValidationError("--max-pending-keys must be at least 1000") }
            recovery.maxPendingKeys = maxPendingKeys
        }
        // On a terminal, one line rewritten in place; otherwise (a log file) a line each time.
        let terminal = isatty(STDERR_FILENO) == 1
        recovery.progressIntervalSeconds = terminal ? 0.5 : 5
        let verb = dryRun ? "reading" : "applying"
        recovery.onProgress = { point in
            let line = "\(verb): \(point.description)"
            FileHandle.standardError.write(Data((terminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
        }
        let report: RecoveryReport
        do {
            report = try await recovery.run()
        } catch let error as RecoveryError {
            // Refused, nothing changed: a status of its own, apart from corruption (2).
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(3)
        }
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        print(summary(report, wal: wal, salvage: salvage))
        if !report.unrecoverable.isEmpty { throw ExitCode(2) }
    }

    /// The fence of the data directory that holds `wal` (the daemon's layout), if any.
    private static func fence(besideLog wal: String) throws -> CheckpointFence? {
        let parts = wal.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.last == Substring(LogLocation.walDirectoryName) else { return nil }
        let dataDirectory = parts.count > 1 ? parts.dropLast().joined(separator: "/") : "."
        guard FileManager.default.fileExists(atPath: dataDirectory + "/" + NodeIdentity.fileName) else { return nil }
        return try CheckpointFence(dataDirectory: dataDirectory.isEmpty ? "/" : dataDirectory)
    }

    private func summary(_ report: RecoveryReport, wal: String, salvage: Recovery.Salvage?) -> String {
        let verb = report.dryRun ? "would apply" : "applied"
        var lines = ["log: \(wal)"]
        if let node = report.node { lines.append("node: \(node.uuidString.lowercased())") }
        if report.tornTailBytes > 0 {
            let backup = report.tornTailBackup.map { " (saved in \($0))" } ?? ""
            lines.append("torn tail: \(report.dryRun ? "would cut" : "cut") \(report.tornTailBytes) bytes\(backup)")
        }
        lines.append("checkpoint LSN before: \(report.checkpointLSNBefore)")
        if let gap = report.acceptedGap {
            lines.append("accepted gap: LSNs \(gap.lowerBound)-\(gap.upperBound) are in neither the log nor PostgreSQL; "
                + "the totals miss them")
        }
        if let range = report.appliedLSNs {
            let slices = report.slices > 1 ? " in \(report.slices) transactions" : ""
            lines.append("\(verb): \(report.records) records, \(report.keys) keys, LSN \(range.lowerBound)-\(range.upperBound)\(slices)")
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
        if let salvage, !report.dryRun {
            let id = salvage.node.uuidString.lowercased()
            lines.append("salvaged under node \(id); this log's segments were left as they are.")
            lines.append("next: a daemon started with --node-id \(id) on a new, empty data directory continues after "
                + "LSN \(report.checkpointLSNAfter); the salvaged directory must not be started again")
        }
        return lines.joined(separator: "\n")
    }
}

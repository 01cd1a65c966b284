import Foundation
import TallyCore
import TallyLog
import TallyPostgres

// Usage: CheckpointBench <database-url> [keys]
//
// Times a checkpoint of `keys` distinct keys (default 1,000,000) through Tally's sink, on
// the insert path (new keys) and the update path (the same keys again), and beside each the
// floor PostgreSQL sets: psql loading the same rows by COPY into a temporary table and
// upserting them into a counts table and a daily table (the same two upserts a checkpoint
// makes) with INSERT … SELECT … ON CONFLICT in one transaction. Each pair runs on the same
// server in the same process run, so the ratio is what counts on a noisy machine.

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: CheckpointBench <database-url> [keys]\n".utf8))
    exit(2)
}
let url = arguments[1]
let keyCount = arguments.count > 2 ? Int(arguments[2])! : 1_000_000

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

func run(_ command: String) -> Int32 {
    system(command)
}

func residentBytes() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
}

let client = PostgresClient(url: url)
try await Migrations(client: client).migrate()
let unnestSink = PostgresCheckpointSink(client: client, chunkRows: 10_000, bulkMethod: .unnest)
let copySink = PostgresCheckpointSink(client: client, chunkRows: 100_000, bulkMethod: .copy)

// The deltas: distinct random keys, sorted as a checkpoint sorts them. The table's RSS is
// measured around building it.
let rssBefore = residentBytes()
var table = DeltaTable(after: 0)
var generator = SystemRandomNumberGenerator()
for lsn in 1...keyCount {
    table.absorb(LogRecord(key: LogKey(high: .random(in: 0...UInt64.max, using: &generator),
                                       low: .random(in: 0...UInt64.max, using: &generator)),
                           value: Int64(lsn % 1000 + 1), arrivalMillis: 1_764_547_200_000), at: LSN(lsn))
}
let rssTable = residentBytes() - rssBefore
let deltas = table.sortedDeltas()

// The same rows as a CSV for psql's COPY.
let csvPath = NSTemporaryDirectory() + "tally-checkpoint-bench-\(UUID().uuidString).csv"
var csv = ""
csv.reserveCapacity(deltas.count * 48)
for delta in deltas { csv += "\(delta.key.uuidString),\(delta.day.iso),\(delta.sum)\n" }
try csv.write(toFile: csvPath, atomically: false, encoding: .utf8)
defer { try? FileManager.default.removeItem(atPath: csvPath) }

let psqlUpsert = """
    BEGIN;
    CREATE TEMP TABLE stage (key uuid, day date, total numeric) ON COMMIT DROP;
    \\copy stage FROM '\(csvPath)' WITH (FORMAT csv)
    INSERT INTO bench_counts AS c (key, total, updated_at) SELECT key, sum(total), now() FROM stage GROUP BY key ORDER BY key
      ON CONFLICT (key) DO UPDATE SET total = c.total + EXCLUDED.total, updated_at = EXCLUDED.updated_at;
    INSERT INTO bench_daily AS d (key, day, total) SELECT key, day, total FROM stage ORDER BY key, day
      ON CONFLICT (key, day) DO UPDATE SET total = d.total + EXCLUDED.total;
    COMMIT;
    """
let scriptPath = csvPath + ".sql"
try psqlUpsert.write(toFile: scriptPath, atomically: false, encoding: .utf8)
defer { try? FileManager.default.removeItem(atPath: scriptPath) }

func timePsql() -> Double {
    let start = ContinuousClock.now
    let status = run("psql -q -v ON_ERROR_STOP=1 '\(url)' -f '\(scriptPath)' > /dev/null")
    precondition(status == 0, "psql failed")
    return seconds(ContinuousClock.now - start)
}

func timeSink(_ sink: PostgresCheckpointSink, previous: LSN, lsn: LSN, node: UUID) async throws -> Double {
    _ = try await client.withConnection { connection in _ = try connection.execute("TRUNCATE tally_counts, tally_daily") }
    let start = ContinuousClock.now
    try await sink.apply(CheckpointBatch(node: node, previousLSN: previous, lsn: lsn, deltas: deltas))
    return seconds(ContinuousClock.now - start)
}

// Tables of the same shape (and indexes) for psql, so both start from the same state.
_ = run("psql -q '\(url)' -c 'DROP TABLE IF EXISTS bench_counts, bench_daily; CREATE TABLE bench_counts (LIKE tally_counts INCLUDING ALL); CREATE TABLE bench_daily (LIKE tally_daily INCLUDING ALL)' > /dev/null")

func timePsqlPair() -> (insert: Double, update: Double) {
    _ = run("psql -q '\(url)' -c 'TRUNCATE bench_counts, bench_daily' > /dev/null")
    return (timePsql(), timePsql())
}

/// Insert path (empty table) then update path (same keys again) for one sink.
func timeSinkPair(_ sink: PostgresCheckpointSink) async throws -> (insert: Double, update: Double) {
    let node = UUID()
    let insert = try await timeSink(sink, previous: 0, lsn: LSN(keyCount), node: node)
    let start = ContinuousClock.now
    try await sink.apply(CheckpointBatch(node: node, previousLSN: LSN(keyCount), lsn: LSN(2 * keyCount), deltas: deltas))
    return (insert, seconds(ContinuousClock.now - start))
}

// Interleaved, so that drift in the machine's load hits every contender alike.
let psqlTimes = timePsqlPair()
let unnestTimes = try await timeSinkPair(unnestSink)
let copyTimes = try await timeSinkPair(copySink)
_ = run("psql -q '\(url)' -c 'DROP TABLE IF EXISTS bench_counts, bench_daily' > /dev/null")

func line(_ name: String, _ tally: Double, _ psql: Double) -> String {
    String(format: "%-22@ tally %6.2f s (%7.0f rows/s)   psql COPY+upsert %6.2f s   ratio %.2f", name as NSString,
           tally, Double(keyCount) / tally, psql, tally / psql)
}
print("checkpoint of \(keyCount) distinct keys into tally_counts and tally_daily")
print(line("insert, unnest 10k", unnestTimes.insert, psqlTimes.insert))
print(line("update, unnest 10k", unnestTimes.update, psqlTimes.update))
print(line("insert, COPY 100k", copyTimes.insert, psqlTimes.insert))
print(line("update, COPY 100k", copyTimes.update, psqlTimes.update))
print(String(format: "delta table RSS for %d keys: %.1f MB", keyCount, Double(rssTable) / 1_000_000))
let result: [String: Any] = [
    "keys": keyCount,
    "psql_insert_seconds": psqlTimes.insert, "psql_update_seconds": psqlTimes.update,
    "unnest_insert_seconds": unnestTimes.insert, "unnest_update_seconds": unnestTimes.update,
    "copy_insert_seconds": copyTimes.insert, "copy_update_seconds": copyTimes.update,
    "delta_table_rss_bytes": rssTable,
]
let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))

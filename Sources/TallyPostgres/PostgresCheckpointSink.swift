import Foundation
import TallyCore
import TallyLog

/// The checkpoint sink over PostgreSQL: one transaction per checkpoint.
///
/// ```sql
/// BEGIN;
/// INSERT INTO tally_checkpoints … ON CONFLICT DO NOTHING;              -- a first checkpoint has a row
/// SELECT lsn FROM tally_checkpoints WHERE node = $1 FOR UPDATE;         -- must be previousLSN
/// INSERT INTO tally_requests … ON CONFLICT (id) DO NOTHING;             -- ids in order; each must be new
/// INSERT INTO tally_counts … SELECT … FROM unnest($1::uuid[], $2::numeric[])
///   ON CONFLICT (key) DO UPDATE SET total = tally_counts.total + EXCLUDED.total;  -- ≤ chunk rows each
/// INSERT INTO tally_daily … SELECT … FROM unnest($1::uuid[], $2::int[], $3::numeric[])
///   ON CONFLICT (key, day) DO UPDATE SET total = tally_daily.total + EXCLUDED.total;
/// UPDATE tally_checkpoints SET lsn = $2 WHERE node = $1 AND lsn = $3;   -- exactly one row
/// COMMIT;
/// ```
/// Deltas arrive sorted by (key, day). Every node upserts all of `tally_counts` in key
/// order, then all of `tally_daily` in (key, day) order, so concurrent checkpoints of
/// several nodes take row locks in one global order and cannot deadlock. (Upserting both
/// tables chunk by chunk would not be: two nodes with different chunk boundaries could
/// each hold the other's next row.)
public final class PostgresCheckpointSink: CheckpointSink {
    /// How the deltas travel to the server. Both are measured by `CheckpointBench`.
    public enum BulkMethod: String, Sendable, CaseIterable {
        /// `INSERT … SELECT … FROM unnest($1::uuid[], $2::numeric[])`, one statement per chunk.
        case unnest
        /// `COPY` of each chunk into a temporary table, then `INSERT … SELECT` from it.
        case copy
    }

    private let client: PostgresClient
    /// Rows per upsert statement: bounds statement size and server memory per statement.
    public let chunkRows: Int
    public let bulkMethod: BulkMethod

    public init(client: PostgresClient, chunkRows: Int = 10_000, bulkMethod: BulkMethod = .unnest) {
        precondition(chunkRows >= 1, "chunks hold at least one row")
        self.client = client
        self.chunkRows = chunkRows
        self.bulkMethod = bulkMethod
    }

    public func checkpointLSN(node: UUID) async throws -> LSN {
        let nodeText = node.uuidString
        return try await client.withConnection { connection in
            let rows: PostgresResult
            do throws(PostgresError) {
                rows = try connection.execute("SELECT lsn FROM \(TableNames.checkpoints) WHERE node = $1", [nodeText])
            } catch {
                // No table yet (a dry run before any migration): no checkpoint yet either.
                if error.sqlState == "42P01" { return 0 }
                throw error
            }
            guard rows.rowCount == 1, let text = rows.value(row: 0, column: 0) else { return 0 }
            guard let lsn = LSN(text) else {
                throw PostgresError(sqlState: nil, message: "checkpoint LSN \(text) is not a number", connectionBroken: false)
            }
            return lsn
        }
    }

    public func apply(_ batch: CheckpointBatch) async throws {
        let chunkRows = chunkRows
        let method = bulkMethod
        try await client.withConnection { connection in
            try Self.apply(batch, on: connection, chunkRows: chunkRows, method: method)
        }
    }

    private static func apply(_ batch: CheckpointBatch, on connection: PostgresConnection, chunkRows: Int,
                              method: BulkMethod) throws {
        let node = batch.node.uuidString
        try connection.execute("BEGIN")
        do {
            try connection.execute(
                "INSERT INTO \(TableNames.checkpoints) (node, lsn, updated_at) VALUES ($1, 0, now()) ON CONFLICT (node) DO NOTHING",
                [node])
            let locked = try connection.execute(
                "SELECT lsn FROM \(TableNames.checkpoints) WHERE node = $1 FOR UPDATE", [node])
            let stored = locked.value(row: 0, column: 0).flatMap { LSN($0) }
            guard stored == batch.previousLSN else {
                try connection.execute("ROLLBACK")
                throw CheckpointSinkError.conflict(node: batch.node, expectedLSN: batch.previousLSN, storedLSN: stored)
            }
            // Requests first, in id order: a checkpoint counts a request's records only if it is
            // the one that records its id (the caller checked; another node may have since).
            var start = 0
            while start < batch.requests.count {
                let end = min(start + chunkRows, batch.requests.count)
                let inserted = try insertRequests(batch.requests[start..<end], node: node, on: connection)
                guard inserted == end - start else {
                    try connection.execute("ROLLBACK")
                    throw CheckpointSinkError.requestTakenMeanwhile(id: batch.requests[start].id)
                }
                start = end
            }
            let totals = Self.totalsPerKey(batch.deltas)
            start = 0
            while start < totals.count {
                let end = min(start + chunkRows, totals.count)
                switch method {
                case .unnest: try upsert(totals[start..<end], on: connection)
                case .copy: try copyAndUpsert(totals[start..<end], on: connection)
                }
                start = end
            }
            start = 0
            while start < batch.deltas.count {
                let end = min(start + chunkRows, batch.deltas.count)
                try upsertDaily(batch.deltas[start..<end], on: connection)
                start = end
            }
            let moved = try connection.execute(
                "UPDATE \(TableNames.checkpoints) SET lsn = $2, updated_at = now() WHERE node = $1 AND lsn = $3",
                [node, String(batch.lsn), String(batch.previousLSN)])
            guard moved.affectedRows == 1 else {
                try connection.execute("ROLLBACK")
                throw CheckpointSinkError.conflict(node: batch.node, expectedLSN: batch.previousLSN, storedLSN: nil)
            }
        } catch {
            if connection.isHealthy { _ = try? connection.execute("ROLLBACK") }
            throw error  // before COMMIT: the server rolls back whatever the connection's fate
        }
        do throws(PostgresError) {
            try connection.execute("COMMIT")
        } catch {
            // A COMMIT the server answered with an error surely rolled back; one whose
            // answer never came may or may not have committed.
            guard error.connectionBroken else { throw error }
            throw CheckpointSinkError.outcomeUnknown(reason: error.description)
        }
    }

    public func knownRequests(_ ids: [String]) async throws -> Set<String> {
        let chunks = stride(from: 0, to: ids.count, by: chunkRows).map { Array(ids[$0..<min($0 + chunkRows, ids.count)]) }
        return try await client.withConnection { connection in
            var known: Set<String> = []
            for chunk in chunks {
                let rows = try connection.execute("SELECT id FROM \(TableNames.requests) WHERE id = ANY($1::text[])",
                                                  [Self.textArray(chunk)])
                for row in 0..<rows.rowCount { if let id = rows.value(row: row, column: 0) { known.insert(id) } }
            }
            return known
        }
    }

    public func pruneRequests(node: UUID, takenBeforeMillis beforeMillis: Int64, limit: Int) async throws -> Int {
        let parameters = [node.uuidString, String(Double(beforeMillis) / 1000), String(limit)]
        return try await client.withConnection { connection in
            try connection.execute("""
                DELETE FROM \(TableNames.requests) WHERE ctid IN (
                  SELECT ctid FROM \(TableNames.requests) WHERE node = $1 AND at < to_timestamp($2::double precision) LIMIT $3::int)
                """, parameters).affectedRows
        }
    }

    /// Inserts request rows, skipping ids already present; returns how many were new.
    private static func insertRequests(_ rows: ArraySlice<RequestRow>, node: String, on connection: PostgresConnection) throws -> Int {
        try connection.execute("""
            INSERT INTO \(TableNames.requests) (id, node, first_lsn, count, digest, at)
            SELECT r.id, $1::uuid, r.first_lsn, r.count, r.digest, to_timestamp(r.at_ms / 1000.0)
            FROM unnest($2::text[], $3::bigint[], $4::int[], $5::bigint[], $6::bigint[]) AS r(id, first_lsn, count, digest, at_ms)
            ON CONFLICT (id) DO NOTHING
            """, [node, textArray(rows.map(\.id)), "{" + rows.map { String($0.firstLSN) }.joined(separator: ",") + "}",
                  "{" + rows.map { String($0.count) }.joined(separator: ",") + "}",
                  "{" + rows.map { String(Int64(bitPattern: $0.digest)) }.joined(separator: ",") + "}",
                  "{" + rows.map { String($0.arrivalMillis) }.joined(separator: ",") + "}"]).affectedRows
    }

    /// A `text[]` literal: every element quoted, `"` and `\` escaped.
    static func textArray(_ values: some Collection<String>) -> String {
        "{" + values.map { value in
            "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }.joined(separator: ",") + "}"
    }

    /// One key's total over the batch's days.
    struct KeyTotal {
        var key: LogKey
        var sum: Int128
    }

    /// Per-key totals of deltas sorted by (key, day), in key order.
    static func totalsPerKey(_ deltas: [KeyDelta]) -> [KeyTotal] {
        var totals: [KeyTotal] = []
        totals.reserveCapacity(deltas.count)
        for delta in deltas {
            if let last = totals.indices.last, totals[last].key == delta.key {
                totals[last].sum += delta.sum
            } else {
                totals.append(KeyTotal(key: delta.key, sum: delta.sum))
            }
        }
        return totals
    }

    /// One bounded upsert of daily totals: key, day (days since 1970-01-01) and total as
    /// three array parameters.
    private static func upsertDaily(_ deltas: ArraySlice<KeyDelta>, on connection: PostgresConnection) throws {
        var keys = "{"
        var days = "{"
        var totals = "{"
        keys.reserveCapacity(deltas.count * 37 + 2)
        days.reserveCapacity(deltas.count * 6 + 2)
        totals.reserveCapacity(deltas.count * 8 + 2)
        for (index, delta) in deltas.enumerated() {
            if index > 0 {
                keys += ","
                days += ","
                totals += ","
            }
            keys += delta.key.uuidString
            days += String(delta.day.number)
            totals += String(delta.sum)
        }
        keys += "}"
        days += "}"
        totals += "}"
        try connection.execute("""
            INSERT INTO \(TableNames.daily) AS t (key, day, total)
            SELECT d.key, DATE '1970-01-01' + d.day, d.total FROM unnest($1::uuid[], $2::int[], $3::numeric[]) AS d(key, day, total)
            ON CONFLICT (key, day) DO UPDATE SET total = t.total + EXCLUDED.total
            """, [keys, days, totals])
    }

    /// One bounded upsert through COPY: the chunk goes into a temporary table (created once
    /// per session, emptied at each commit) as CSV, then is upserted in key order.
    private static func copyAndUpsert(_ deltas: ArraySlice<KeyTotal>, on connection: PostgresConnection) throws {
        try connection.execute("CREATE TEMP TABLE IF NOT EXISTS tally_stage (key uuid, total numeric) ON COMMIT DELETE ROWS")
        try connection.execute("TRUNCATE tally_stage")
        var csv = ""
        csv.reserveCapacity(deltas.count * 48)
        for delta in deltas {
            csv += delta.key.uuidString
            csv += ","
            csv += String(delta.sum)
            csv += "\n"
        }
        try connection.copyIn("COPY tally_stage (key, total) FROM STDIN (FORMAT csv)", data: Array(csv.utf8))
        try connection.execute("""
            INSERT INTO \(TableNames.counts) AS c (key, total, updated_at)
            SELECT key, total, now() FROM tally_stage ORDER BY key
            ON CONFLICT (key) DO UPDATE SET total = c.total + EXCLUDED.total, updated_at = EXCLUDED.updated_at
            """)
    }

    /// One bounded upsert: keys and totals as two array parameters (`{a,b,…}` text form).
    private static func upsert(_ deltas: ArraySlice<KeyTotal>, on connection: PostgresConnection) throws {
        var keys = "{"
        var totals = "{"
        keys.reserveCapacity(deltas.count * 37 + 2)
        totals.reserveCapacity(deltas.count * 8 + 2)
        for (index, delta) in deltas.enumerated() {
            if index > 0 {
                keys += ","
                totals += ","
            }
            keys += delta.key.uuidString
            totals += String(delta.sum)
        }
        keys += "}"
        totals += "}"
        try connection.execute("""
            INSERT INTO \(TableNames.counts) AS c (key, total, updated_at)
            SELECT d.key, d.total, now() FROM unnest($1::uuid[], $2::numeric[]) AS d(key, total)
            ON CONFLICT (key) DO UPDATE SET total = c.total + EXCLUDED.total, updated_at = EXCLUDED.updated_at
            """, [keys, totals])
    }
}

import Foundation
import TallyCore
import TallyLog

/// The read side over PostgreSQL, through a bounded `PostgresPool`.
///
/// Each per-key read is one statement, so its totals and the node's checkpoint LSN come
/// from one snapshot (READ COMMITTED gives every statement its own consistent snapshot):
/// the reader then adds exactly the pending part beyond that LSN.
public struct PostgresCountStore: PersistedCounts {
    /// The daemon reads through a `PostgresPool`; `tally report` through one `PostgresClient`.
    public let pool: any PostgresConnectionSource

    public init(pool: any PostgresConnectionSource) {
        self.pool = pool
    }

    public func total(of key: LogKey, checkpointOf node: UUID) async throws -> PersistedRead<DecimalTotal> {
        let parameters = [key.uuidString, node.uuidString]
        return try await pool.withConnection { connection in
            let row = try connection.execute("""
                SELECT (SELECT total::text FROM \(TableNames.counts) WHERE key = $1),
                       (SELECT lsn FROM \(TableNames.checkpoints) WHERE node = $2)
                """, parameters)
            return PersistedRead(value: try Self.total(row.value(row: 0, column: 0)),
                                 checkpointLSN: try Self.lsn(row.value(row: 0, column: 1)))
        }
    }

    public func dailyTotals(of key: LogKey, in days: ClosedRange<Day>, checkpointOf node: UUID) async throws
        -> PersistedRead<[(day: Day, total: DecimalTotal)]>
    {
        let parameters = [key.uuidString, days.lowerBound.iso, days.upperBound.iso, node.uuidString]
        return try await pool.withConnection { connection in
            // The first row carries the checkpoint LSN, the rest the days: one statement, one snapshot.
            let rows = try connection.execute("""
                SELECT NULL::int, NULL::text, (SELECT lsn FROM \(TableNames.checkpoints) WHERE node = $4)
                UNION ALL
                (SELECT day - DATE '1970-01-01', total::text, NULL FROM \(TableNames.daily)
                 WHERE key = $1 AND day BETWEEN $2::date AND $3::date ORDER BY day)
                """, parameters)
            var totals: [(day: Day, total: DecimalTotal)] = []
            for row in 1..<rows.rowCount {
                guard let number = rows.value(row: row, column: 0).flatMap({ Int32($0) }) else {
                    throw PostgresError(sqlState: nil, message: "a daily row without a day", connectionBroken: false)
                }
                totals.append((Day(number: number), try Self.total(rows.value(row: row, column: 1))))
            }
            return PersistedRead(value: totals, checkpointLSN: try Self.lsn(rows.value(row: 0, column: 2)))
        }
    }

    public func total(of key: LogKey, in days: ClosedRange<Day>, checkpointOf node: UUID) async throws -> PersistedRead<DecimalTotal> {
        let parameters = [key.uuidString, days.lowerBound.iso, days.upperBound.iso, node.uuidString]
        return try await pool.withConnection { connection in
            let row = try connection.execute("""
                SELECT (SELECT sum(total)::text FROM \(TableNames.daily) WHERE key = $1 AND day BETWEEN $2::date AND $3::date),
                       (SELECT lsn FROM \(TableNames.checkpoints) WHERE node = $4)
                """, parameters)
            return PersistedRead(value: try Self.total(row.value(row: 0, column: 0)),
                                 checkpointLSN: try Self.lsn(row.value(row: 0, column: 1)))
        }
    }

    /// One page of the daily report: the keys counted on `day` after `after`, in key order.
    public func dailyReport(day: Day, after: LogKey?, limit: Int) async throws -> DailyReportPage {
        precondition(limit >= 1, "a page holds at least one key")
        let parameters: [String?] = [day.iso, after?.uuidString, String(limit + 1)]
        return try await pool.withConnection { connection in
            try Self.dailyReport(parameters, limit: limit, on: connection)
        }
    }

    private static func dailyReport(_ parameters: [String?], limit: Int, on connection: PostgresConnection) throws -> DailyReportPage {
        // One row past the page says whether another page follows.
        let rows = try connection.execute("""
            SELECT d.key, d.total::text, n.name FROM \(TableNames.daily) d
            LEFT JOIN \(TableNames.keyNames) n ON n.key = d.key
            WHERE d.day = $1::date AND ($2::uuid IS NULL OR d.key > $2::uuid)
            ORDER BY d.key LIMIT $3::int
            """, parameters)
        var page = DailyReportPage()
        for row in 0..<min(rows.rowCount, limit) {
            guard let key = rows.value(row: row, column: 0).flatMap({ UUID(uuidString: $0) }).map(LogKey.init) else {
                throw PostgresError(sqlState: nil, message: "a daily row without a key", connectionBroken: false)
            }
            page.entries.append(DailyReportPage.Entry(key: key, total: try total(rows.value(row: row, column: 1)),
                                                      name: rows.value(row: row, column: 2)))
        }
        if rows.rowCount > limit { page.nextAfter = page.entries.last?.key }
        return page
    }

    static func total(_ text: String?) throws -> DecimalTotal {
        guard let text else { return .zero }
        guard let total = DecimalTotal(decimal: text) else {
            throw PostgresError(sqlState: nil, message: "total \(text) is not a whole non-negative number", connectionBroken: false)
        }
        return total
    }

    static func lsn(_ text: String?) throws -> LSN {
        guard let text else { return 0 }
        guard let lsn = LSN(text) else {
            throw PostgresError(sqlState: nil, message: "checkpoint LSN \(text) is not a number", connectionBroken: false)
        }
        return lsn
    }
}

extension PostgresCountStore: RequestLookup {
    /// A request id recorded by a checkpoint of any node (`tally_requests`).
    public func storedRequest(id: String) async throws -> StoredRequest? {
        try await pool.withConnection { connection in
            let rows = try connection.execute(
                "SELECT node, first_lsn, count, digest FROM \(TableNames.requests) WHERE id = $1", [id])
            guard rows.rowCount == 1, let node = rows.value(row: 0, column: 0).flatMap({ UUID(uuidString: $0) }),
                  let first = rows.value(row: 0, column: 1).flatMap({ LSN($0) }),
                  let count = rows.value(row: 0, column: 2).flatMap({ Int($0) }),
                  let digest = rows.value(row: 0, column: 3).flatMap({ Int64($0) }) else { return nil }
            return StoredRequest(node: node, firstLSN: first, count: count, digest: UInt64(bitPattern: digest))
        }
    }
}

/// A page of `GET /reports/daily`: keys in order, with their name when one is registered.
public struct DailyReportPage: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var key: LogKey
        public var total: DecimalTotal
        public var name: String?
    }

    public var entries: [Entry] = []
    /// The key to pass as `after` for the next page; nil on the last page.
    public var nextAfter: LogKey?
}

/// Something that runs blocking libpq work on a thread of its own.
public protocol PostgresConnectionSource: Sendable {
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T
}

extension PostgresClient: PostgresConnectionSource {}
extension PostgresPool: PostgresConnectionSource {}
